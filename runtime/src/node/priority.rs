//! Thread priorities: work that may wait (compiling deployed modules) runs
//! below the executors and the network, so it takes the CPU only when they
//! leave it.
//!
//! Owns: the calls into the OS that lower a thread's priority and read the
//! CPU time it used (a lowered thread's budget is counted in CPU time: on a
//! busy node its wall time says how busy the node was, not what it cost).

/// The nice value compile threads run at (Linux: nice is per thread).
pub const COMPILE_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority to `COMPILE_NICE` (Linux only;
/// elsewhere nothing). Best effort: a compile at normal priority is still
/// bounded by its budget.
pub fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take plain integers and touch no
    // memory of ours; on Linux `PRIO_PROCESS` with a thread id sets that
    // thread's nice value.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid, COMPILE_NICE);
    }
}

/// A thread's CPU clock, readable from any thread (Linux; elsewhere there
/// is none).
#[derive(Debug, Clone, Copy)]
pub struct CpuClock(#[cfg(target_os = "linux")] libc::clockid_t);

impl CpuClock {
    /// The calling thread's clock. No system call: the id is made from the
    /// thread's id.
    pub fn this_thread() -> Option<CpuClock> {
        #[cfg(target_os = "linux")]
        {
            let mut id: libc::clockid_t = 0;
            // SAFETY: `id` is a valid, writable clockid_t for the call's
            // duration, and pthread_self names the calling (live) thread.
            let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
            if rc == 0 {
                return Some(CpuClock(id));
            }
        }
        None
    }

    /// CPU time the thread has used. A system call (about 0.65 µs on this
    /// project's CI machines). Once the thread has ended it is None, or,
    /// if Linux gave its id to a newer thread of this process, that
    /// thread's time: read it only while the thread is known to run.
    pub fn read(&self) -> Option<std::time::Duration> {
        #[cfg(target_os = "linux")]
        {
            let mut t = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `t` is a valid, writable timespec for the call's
            // duration; any clock id is safe to pass (an ended thread's is
            // refused with EINVAL, or names whichever thread has its id).
            let rc = unsafe { libc::clock_gettime(self.0, &mut t) };
            if rc == 0 {
                let secs = u64::try_from(t.tv_sec).ok()?;
                let nanos = u32::try_from(t.tv_nsec).ok()?;
                return Some(std::time::Duration::new(secs, nanos));
            }
        }
        None
    }
}

/// What one call cost the thread that ran it: the CPU time it used when
/// timed `by_cpu`, else (or where there is no CPU clock) its wall time.
/// On a busy node a call's wall time is mostly its wait for the CPU, so a
/// cheap call of one tenant would look as dear as another tenant's
/// expensive ones; the CPU time is what the call took. Reading it costs two
/// system calls, so calls are timed by CPU only where the difference
/// counts: while another tenant is active on the partition.
#[derive(Debug, Clone, Copy)]
pub struct CallTimer {
    wall: std::time::Instant,
    cpu: Option<(CpuClock, std::time::Duration)>,
}

impl CallTimer {
    /// Starts timing a call on the calling thread.
    pub fn start(by_cpu: bool) -> CallTimer {
        let cpu = by_cpu
            .then(CpuClock::this_thread)
            .flatten()
            .and_then(|c| Some((c, c.read()?)));
        CallTimer {
            wall: std::time::Instant::now(),
            cpu,
        }
    }

    /// Wall time since the start.
    pub fn wall(&self) -> std::time::Duration {
        self.wall.elapsed()
    }

    /// The cost so far: CPU time (never more than the wall time) when
    /// timed by CPU and the clock reads, else the wall time. Callable from
    /// any thread.
    pub fn cost(&self) -> std::time::Duration {
        let wall = self.wall();
        self.cpu
            .and_then(|(clock, at)| clock.read().map(|now| now.saturating_sub(at)))
            .map_or(wall, |cpu| cpu.min(wall))
    }
}

/// CPU time the calling thread has used (Linux; elsewhere None).
pub fn thread_cpu_time() -> Option<std::time::Duration> {
    CpuClock::this_thread()?.read()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_counts_work_not_sleep() {
        let t0 = thread_cpu_time().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let slept = thread_cpu_time().unwrap() - t0;
        let mut x = 1u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(200) {
            x = std::hint::black_box(x.wrapping_mul(3).wrapping_add(1));
        }
        let worked = thread_cpu_time().unwrap() - t0 - slept;
        assert!(slept < std::time::Duration::from_millis(50), "{slept:?}");
        assert!(worked > std::time::Duration::from_millis(20), "{worked:?}");
    }

    #[test]
    fn a_call_timed_by_cpu_is_not_charged_its_wait() {
        // Works until this thread has used `for_` of CPU, however long
        // that takes on a busy machine.
        let burn = |for_: std::time::Duration| {
            let (start, mut x) = (thread_cpu_time().unwrap(), 1u64);
            while thread_cpu_time().unwrap() - start < for_ {
                x = std::hint::black_box(x.wrapping_mul(3).wrapping_add(1));
            }
        };
        let by_cpu = CallTimer::start(true);
        let by_wall = CallTimer::start(false);
        // Waiting (for the CPU, or asleep) is not the call's cost.
        std::thread::sleep(std::time::Duration::from_millis(100));
        burn(std::time::Duration::from_millis(30));
        let (cpu, wall) = (by_cpu.cost(), by_wall.cost());
        assert!(wall >= std::time::Duration::from_millis(130), "{wall:?}");
        assert!(cpu >= std::time::Duration::from_millis(30), "{cpu:?}");
        assert!(cpu < std::time::Duration::from_millis(100), "{cpu:?}");
        // Another thread reads the same clock: the cost of a call running
        // elsewhere (the relief monitor's view).
        let seen = std::thread::spawn(move || by_cpu.cost()).join().unwrap();
        assert!(
            seen >= cpu && seen < std::time::Duration::from_millis(100),
            "{seen:?}"
        );
    }
}
