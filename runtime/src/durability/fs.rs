//! The file operations the log and the snapshot code need, on one flat
//! directory: a seam, so the same log runs on the real disk (`DirFs`) and on
//! the simulated one (`SimFs`), recovery included.
//!
//! Owns: the `Fs` and `FsFile` traits and `DirFs`, their implementation over
//! a `cap_std::fs::Dir`. Must not: grow into a VFS (no subdirectories, no
//! seeking writes, no metadata beyond a length), or reach any path except
//! through the `Dir` it holds. Errors are plain `io::Error`s; the log adds
//! the file name and the operation.
//!
//! ```text
//!   Log<F: Fs> --list/read/read_at/len/create/open_append/rename/remove/sync_dir--> F
//!              --write_all/sync_data/set_len/reserve/unreserve--> F::File
//!   DirFs: a cap-std Dir (real disk)     SimFs: memory, crashes on demand
//! ```
//!
//! Durability contract (what the log relies on, and what `SimFs` models):
//! a file's bytes and length are durable once `sync_data` on it returns;
//! names created, renamed or removed are durable once `sync_dir` returns.

use cap_std::fs::{Dir, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};

/// A file opened for writing at its end (every handle appends, also after
/// `set_len`).
pub trait FsFile {
    /// Appends `bytes` (all of them, or an error).
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes the file's bytes and length durable (fdatasync).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Cuts (or extends with zeros) the file to `len` bytes; later writes
    /// go to the new end.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Sets aside disk space for `len` bytes from `offset`, without
    /// changing the file's length, so that writing there later cannot
    /// run out of space (`fallocate` with `FALLOC_FL_KEEP_SIZE`). A full
    /// disk is `ENOSPC` (or `EDQUOT`: see `is_no_space`); a file system
    /// that cannot do it is `Unsupported`.
    fn reserve(&mut self, offset: u64, len: u64) -> io::Result<()>;
    /// Gives back space `reserve` set aside from `offset` (past the
    /// file's end) for `len` bytes.
    fn unreserve(&mut self, offset: u64, len: u64) -> io::Result<()>;
}

/// Whether `e` says the disk (or the user's quota on it) is full.
pub fn is_no_space(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
        || e.raw_os_error()
            .is_some_and(|c| c == libc::ENOSPC || c == libc::EDQUOT)
}

/// Times `fallocate` is called again after a signal interrupted it.
#[cfg(target_os = "linux")]
const FALLOCATE_TRIES_MAX: u32 = 8;

/// `fallocate(2)` on `f`, keeping its length: setting space aside, or
/// (`punch`) giving it back. An `EOPNOTSUPP` is `Unsupported`.
#[cfg(target_os = "linux")]
fn fallocate(f: &File, punch: bool, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mode = if punch {
        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE
    } else {
        libc::FALLOC_FL_KEEP_SIZE
    };
    let (Ok(off), Ok(n)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a range past what the file system can address",
        ));
    };
    if n == 0 {
        return Ok(());
    }
    let mut tries = 0;
    loop {
        // SAFETY: the descriptor is open for as long as `f` is borrowed;
        // the call reads no memory of ours.
        let r = unsafe { libc::fallocate(f.as_raw_fd(), mode, off, n) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        tries += 1;
        match e.raw_os_error() {
            Some(libc::EINTR) if tries < FALLOCATE_TRIES_MAX => {}
            Some(libc::EOPNOTSUPP | libc::ENOSYS) => {
                return Err(io::Error::new(io::ErrorKind::Unsupported, e))
            }
            _ => return Err(e),
        }
    }
}

/// One flat directory of files.
pub trait Fs {
    type File: FsFile;

    /// The names in the directory (UTF-8 ones; others are skipped), in no
    /// particular order: at most `names_max + 1`, so the caller can tell
    /// there were more than it accepts without listing them all.
    fn list(&self, names_max: usize) -> io::Result<Vec<String>>;
    /// The whole content of `name`.
    fn read(&self, name: &str) -> io::Result<Vec<u8>>;
    /// Exactly `buf.len()` bytes of `name` from `offset` (an error if the
    /// file ends before).
    fn read_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// The length of `name` in bytes.
    fn len(&self, name: &str) -> io::Result<u64>;
    /// Creates `name` empty (truncating it if it exists), open for writing.
    fn create(&self, name: &str) -> io::Result<Self::File>;
    /// Opens the existing `name` for writing at its end.
    fn open_append(&self, name: &str) -> io::Result<Self::File>;
    /// Renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes `name`.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes the names created, renamed and removed so far durable.
    fn sync_dir(&self) -> io::Result<()>;
    /// Another handle on the same directory (for another thread).
    fn try_clone(&self) -> io::Result<Self>
    where
        Self: Sized;
}

/// The real disk: every operation goes through one `cap_std::fs::Dir`.
pub struct DirFs {
    dir: Dir,
}

impl DirFs {
    pub fn new(dir: Dir) -> DirFs {
        DirFs { dir }
    }
}

/// Elsewhere space is not set aside (see `Reserve`).
#[cfg(not(target_os = "linux"))]
fn fallocate(_: &File, _: bool, _: u64, _: u64) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "setting space aside needs Linux's fallocate",
    ))
}

impl FsFile for File {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        Write::write_all(self, bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn reserve(&mut self, offset: u64, len: u64) -> io::Result<()> {
        fallocate(self, false, offset, len)
    }

    fn unreserve(&mut self, offset: u64, len: u64) -> io::Result<()> {
        fallocate(self, true, offset, len)
    }
}

impl Fs for DirFs {
    type File = File;

    fn list(&self, names_max: usize) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for ent in self.dir.entries()? {
            if names.len() > names_max {
                break;
            }
            if let Ok(name) = ent?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        self.dir.read(name)
    }

    fn read_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut f = self.dir.open(name)?;
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(buf)
    }

    fn len(&self, name: &str) -> io::Result<u64> {
        Ok(self.dir.metadata(name)?.len())
    }

    /// Opened for appending (std refuses append with truncate, so the
    /// length is cut after).
    fn create(&self, name: &str) -> io::Result<File> {
        let f = self
            .dir
            .open_with(name, OpenOptions::new().append(true).create(true))?;
        f.set_len(0)?;
        Ok(f)
    }

    fn open_append(&self, name: &str) -> io::Result<File> {
        self.dir.open_with(name, OpenOptions::new().append(true))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.dir.rename(from, &self.dir, to)
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.dir.remove_file(name)
    }

    /// The `Dir`'s own descriptor may be `O_PATH`, which cannot be fsynced,
    /// so "." is opened through it.
    fn sync_dir(&self) -> io::Result<()> {
        self.dir.open(".")?.sync_all()
    }

    fn try_clone(&self) -> io::Result<DirFs> {
        Ok(DirFs {
            dir: self.dir.try_clone()?,
        })
    }
}
