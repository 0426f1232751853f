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

/// CPU time the calling thread has used (Linux; elsewhere None).
pub fn thread_cpu_time() -> Option<std::time::Duration> {
    #[cfg(target_os = "linux")]
    {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a valid, writable timespec for the call's
        // duration; the clock id is a constant.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        if rc == 0 {
            let secs = u64::try_from(t.tv_sec).ok()?;
            let nanos = u32::try_from(t.tv_nsec).ok()?;
            return Some(std::time::Duration::new(secs, nanos));
        }
    }
    None
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
}
