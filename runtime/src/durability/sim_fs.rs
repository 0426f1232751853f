//! A simulated disk for the simulator and for crash tests: an in-memory `Fs`
//! that forgets what was not synced when told to crash, deterministically.
//!
//! Owns: `SimFs` (a cheap clonable handle: the simulator keeps one to crash
//! the disk while a `Log` holds another), its files and the crash model.
//! Must not: read a clock or the OS's randomness, or iterate anything in an
//! order that is not fixed (maps are `BTreeMap`s): the same calls and seeds
//! give the same bytes. One thread only (`Rc`/`RefCell`, not `Send`).
//!
//! ```text
//!   write_all / set_len --> file content (+ pending ops) --sync_data--> synced content
//!   create / rename / remove --> names (+ journal) --sync_dir--> durable names
//!   crash(seed): names = durable names + a prefix of the journal;
//!                each file = synced + a prefix of its pending ops, the last one
//!                possibly torn, its last bytes possibly garbled
//! ```
//!
//! The crash model (ALICE's, in its common form): each file (inode) has its
//! current bytes and its synced bytes; `sync_data` makes its content and
//! length durable. Names are durable after `sync_dir`; namespace operations
//! reach the disk in the order they were made, so a crash keeps a random
//! prefix of those made since the last `sync_dir` (none of them is one
//! outcome; a name created since is then gone, a removed or renamed one is
//! back as it was). Per file, writes reach the disk in order: a crash keeps
//! its synced content plus a random prefix of the operations since its last
//! fsync, the one in flight torn at a random byte; with even odds, one byte
//! among the last `GARBLED_TAIL_BYTES` of what survived of those unsynced
//! bytes is flipped (the sector being written when power went). Garbage only
//! at the end is what in-order write-back gives, and what log recovery
//! assumes (a bad record with a good one after it is corruption).
//!
//! Faults on demand: `set_full` fills the disk (only space set aside with
//! `reserve` can be written); `fail_next_sync` makes the next file fsync return EIO
//! (whether it made the data durable is decided at the next crash, either way
//! allowed); `fail_next_dir_sync` the same for the directory;
//! `corrupt_at_rest` flips a durable bit (bit rot). After a crash, handles
//! opened before it fail ("stale"): the process that held them is gone.

use super::fs::{Fs, FsFile};
use crate::rng::Rng;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::rc::Rc;

/// How far from the end of the surviving unsynced bytes a crash may garble
/// one byte. Below the smallest log record (28 bytes), so a garbled byte is
/// always in the last record that survived: a torn tail, never a bad record
/// followed by a good one.
pub const GARBLED_TAIL_BYTES: u64 = 16;

/// A simulated disk holding one directory. Clones share it.
#[derive(Clone, Default)]
pub struct SimFs {
    state: Rc<RefCell<State>>,
}

/// Counts of what was done to the disk, for tests and the simulator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimFsStats {
    pub writes: u64,
    pub bytes_written: u64,
    pub reads: u64,
    pub bytes_read: u64,
    pub syncs: u64,
    pub dir_syncs: u64,
    pub failed_syncs: u64,
    pub crashes: u64,
}

/// What a crash did to one file that survived it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashedFile {
    pub name: String,
    /// Its length after the crash.
    pub len: u64,
    /// Operations since its last fsync, and how many survived (the one in
    /// flight, if torn, is not counted).
    pub pending_ops: usize,
    pub kept_ops: usize,
    /// Bytes of the operation in flight that survived (a torn write).
    pub torn_bytes: Option<u64>,
    /// The offset of the byte flipped, if one was.
    pub garbled_at: Option<u64>,
}

/// What `SimFs::crash` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// Namespace operations since the last `sync_dir`, and how many survived.
    pub journal_ops: usize,
    pub kept_journal_ops: usize,
    /// Every file that exists after the crash, by name.
    pub files: Vec<CrashedFile>,
}

/// An open simulated file.
pub struct SimFile {
    fs: SimFs,
    inode: u64,
    generation: u64,
}

#[derive(Default)]
struct State {
    names: BTreeMap<String, u64>,
    durable_names: BTreeMap<String, u64>,
    /// Namespace operations since the last `sync_dir`, oldest first.
    journal: Vec<NsOp>,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    /// Bumped by each crash; handles from an older one are stale.
    generation: u64,
    /// File fsyncs (directory fsyncs) to let pass before one fails.
    fail_sync: Option<u32>,
    fail_dir_sync: Option<u32>,
    /// The disk is full (`set_full`).
    full: bool,
    stats: SimFsStats,
}

enum NsOp {
    Link { name: String, inode: u64 },
    Rename { from: String, to: String },
    Unlink { name: String },
}

#[derive(Default)]
struct Inode {
    data: Vec<u8>,
    /// Bytes set aside for it by `reserve` (its length may be less).
    reserved: u64,
    synced: Vec<u8>,
    /// Operations since the last fsync, oldest first.
    pending: Vec<Pending>,
    /// How many of `pending` a failed fsync was asked to make durable.
    failed_sync_at: Option<usize>,
}

enum Pending {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

fn apply(content: &mut Vec<u8>, op: &Pending) {
    match op {
        Pending::Write { offset, bytes } => write_at(content, *offset, bytes),
        Pending::SetLen(len) => content.resize(*len as usize, 0),
    }
}

fn write_at(content: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let at = offset as usize;
    if content.len() < at + bytes.len() {
        content.resize(at + bytes.len(), 0);
    }
    content[at..at + bytes.len()].copy_from_slice(bytes);
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no file {name}"))
}

fn eio(what: &str) -> io::Error {
    io::Error::other(format!("simulated I/O error ({what})"))
}

impl State {
    fn inode(&self, name: &str) -> io::Result<&Inode> {
        let id = self.names.get(name).ok_or_else(|| not_found(name))?;
        Ok(self
            .inodes
            .get(id)
            .expect("every name refers to a live inode"))
    }

    fn link(&mut self, name: &str, inode: u64) {
        self.names.insert(name.to_string(), inode);
        self.journal.push(NsOp::Link {
            name: name.to_string(),
            inode,
        });
    }

    /// Drops the inodes no name refers to (now or after a crash).
    fn collect_garbage(&mut self) {
        let live: BTreeSet<u64> = self
            .names
            .values()
            .chain(self.durable_names.values())
            .copied()
            .collect();
        self.inodes.retain(|id, _| live.contains(id));
    }
}

impl Inode {
    /// Replaces the content by what a crash leaves of it.
    fn crash(&mut self, rng: &mut Rng, name: &str) -> CrashedFile {
        let n = self.pending.len();
        // A failed fsync may have made its share durable, or not.
        let floor = match self.failed_sync_at {
            Some(at) if rng.below(2) == 1 => at,
            _ => 0,
        };
        let kept = rng.range(floor as u64, n as u64 + 1) as usize;
        let mut content = std::mem::take(&mut self.synced);
        let mut unsynced_from = u64::MAX;
        for op in &self.pending[..kept] {
            apply(&mut content, op);
            if let Pending::Write { offset, .. } = op {
                unsynced_from = unsynced_from.min(*offset);
            }
        }
        let mut torn_bytes = None;
        if let Some(Pending::Write { offset, bytes }) = self.pending.get(kept) {
            let keep = rng.below(bytes.len() as u64) as usize;
            if keep > 0 {
                write_at(&mut content, *offset, &bytes[..keep]);
                unsynced_from = unsynced_from.min(*offset);
            }
            torn_bytes = Some(keep as u64);
        }
        let len = content.len() as u64;
        let mut garbled_at = None;
        if unsynced_from < len && rng.below(2) == 1 {
            let lo = unsynced_from.max(len.saturating_sub(GARBLED_TAIL_BYTES));
            let at = rng.range(lo, len);
            content[at as usize] ^= 1 << rng.below(8);
            garbled_at = Some(at);
        }
        self.data = content.clone();
        self.synced = content;
        self.pending.clear();
        self.failed_sync_at = None;
        CrashedFile {
            name: name.to_string(),
            len,
            pending_ops: n,
            kept_ops: kept,
            torn_bytes,
            garbled_at,
        }
    }
}

impl SimFs {
    pub fn new() -> SimFs {
        SimFs::default()
    }

    /// Loses power: see the module doc for what survives. The same state and
    /// seed always give the same result.
    pub fn crash(&self, seed: u64) -> CrashReport {
        let mut rng = Rng::new(seed);
        let mut st = self.state.borrow_mut();
        let st = &mut *st;
        let journal = std::mem::take(&mut st.journal);
        let kept = rng.below(journal.len() as u64 + 1) as usize;
        for op in &journal[..kept] {
            match op {
                NsOp::Link { name, inode } => {
                    st.durable_names.insert(name.clone(), *inode);
                }
                NsOp::Rename { from, to } => {
                    if let Some(inode) = st.durable_names.remove(from) {
                        st.durable_names.insert(to.clone(), inode);
                    }
                }
                NsOp::Unlink { name } => {
                    st.durable_names.remove(name);
                }
            }
        }
        st.names = st.durable_names.clone();
        st.collect_garbage();
        let mut report = CrashReport {
            journal_ops: journal.len(),
            kept_journal_ops: kept,
            files: Vec::new(),
        };
        let mut by_inode: BTreeMap<u64, &str> = BTreeMap::new();
        for (name, id) in &st.names {
            by_inode.insert(*id, name);
        }
        for (id, inode) in st.inodes.iter_mut() {
            let name = by_inode.get(id).copied().unwrap_or_default();
            report.files.push(inode.crash(&mut rng, name));
        }
        report.files.sort_by(|a, b| a.name.cmp(&b.name));
        st.generation += 1;
        st.fail_sync = None;
        st.fail_dir_sync = None;
        st.stats.crashes += 1;
        report
    }

    /// Fills the disk (or frees it): while full, `reserve` past what a
    /// file has set aside fails with ENOSPC, and so does a write past it
    /// (after writing what fits).
    pub fn set_full(&self, full: bool) {
        self.state.borrow_mut().full = full;
    }

    /// The next `sync_data` of any file fails with EIO.
    pub fn fail_next_sync(&self) {
        self.fail_sync_after(0);
    }

    /// The next `sync_dir` fails with EIO.
    pub fn fail_next_dir_sync(&self) {
        self.fail_dir_sync_after(0);
    }

    /// `skip` file fsyncs succeed, then one fails with EIO (a crash disarms it).
    pub fn fail_sync_after(&self, skip: u32) {
        self.state.borrow_mut().fail_sync = Some(skip);
    }

    /// `skip` directory fsyncs succeed, then one fails with EIO.
    pub fn fail_dir_sync_after(&self, skip: u32) {
        self.state.borrow_mut().fail_dir_sync = Some(skip);
    }

    /// Flips bit 0 of the durable byte at `offset` of `name` (bit rot).
    pub fn corrupt_at_rest(&self, name: &str, offset: u64) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        let id = *st.names.get(name).ok_or_else(|| not_found(name))?;
        let inode = st
            .inodes
            .get_mut(&id)
            .expect("every name refers to a live inode");
        let at = offset as usize;
        if at >= inode.synced.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name} has {} durable bytes", inode.synced.len()),
            ));
        }
        inode.synced[at] ^= 1;
        if let Some(b) = inode.data.get_mut(at) {
            *b ^= 1;
        }
        Ok(())
    }

    pub fn stats(&self) -> SimFsStats {
        self.state.borrow().stats
    }

    /// The names in the directory, sorted.
    pub fn names(&self) -> Vec<String> {
        self.state.borrow().names.keys().cloned().collect()
    }
}

impl SimFile {
    fn with<T>(&mut self, f: impl FnOnce(&mut State, u64) -> io::Result<T>) -> io::Result<T> {
        let mut st = self.fs.state.borrow_mut();
        if st.generation != self.generation {
            return Err(eio("stale handle: the disk crashed since it was opened"));
        }
        if !st.inodes.contains_key(&self.inode) {
            return Err(eio("the file was removed and the removal synced"));
        }
        f(&mut st, self.inode)
    }
}

/// Counts a sync against an armed failure: whether this one fails.
fn fails(armed: &mut Option<u32>) -> bool {
    match *armed {
        Some(0) => {
            *armed = None;
            true
        }
        Some(n) => {
            *armed = Some(n - 1);
            false
        }
        None => false,
    }
}

fn live(st: &mut State, id: u64) -> &mut Inode {
    st.inodes.get_mut(&id).expect("checked by SimFile::with")
}

impl FsFile for SimFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.with(|st, id| {
            st.stats.writes += 1;
            st.stats.bytes_written += bytes.len() as u64;
            let full = st.full;
            let inode = live(st, id);
            let offset = inode.data.len() as u64;
            // On a full disk only space set aside can be written: the
            // write stops where that ends, as a real one would.
            let room = inode.reserved.saturating_sub(offset) as usize;
            let fits = if full {
                bytes.len().min(room)
            } else {
                bytes.len()
            };
            let bytes_in = &bytes[..fits];
            inode.data.extend_from_slice(bytes_in);
            inode.pending.push(Pending::Write {
                offset,
                bytes: bytes_in.to_vec(),
            });
            if fits < bytes.len() {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            Ok(())
        })
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.with(|st, id| {
            st.stats.syncs += 1;
            let fail = fails(&mut st.fail_sync);
            if fail {
                st.stats.failed_syncs += 1;
            }
            let inode = live(st, id);
            if fail {
                inode.failed_sync_at = Some(inode.pending.len());
                return Err(eio("fsync"));
            }
            for op in std::mem::take(&mut inode.pending) {
                apply(&mut inode.synced, &op);
            }
            inode.failed_sync_at = None;
            Ok(())
        })
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.with(|st, id| {
            let inode = live(st, id);
            inode.data.resize(len as usize, 0);
            inode.pending.push(Pending::SetLen(len));
            // As on a real file system, cutting a file frees what was set
            // aside past its new end.
            inode.reserved = inode.reserved.min(len);
            Ok(())
        })
    }

    fn reserve(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.with(|st, id| {
            let full = st.full;
            let inode = live(st, id);
            let end = offset + len;
            if end <= inode.reserved.max(inode.data.len() as u64) {
                return Ok(());
            }
            if full {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            inode.reserved = end;
            Ok(())
        })
    }

    fn unreserve(&mut self, offset: u64, _len: u64) -> io::Result<()> {
        self.with(|st, id| {
            let inode = live(st, id);
            inode.reserved = inode.reserved.min(offset.max(inode.data.len() as u64));
            Ok(())
        })
    }
}

impl Fs for SimFs {
    type File = SimFile;

    fn list(&self, names_max: usize) -> io::Result<Vec<String>> {
        let st = self.state.borrow();
        Ok(st.names.keys().take(names_max + 1).cloned().collect())
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let mut st = self.state.borrow_mut();
        let data = st.inode(name)?.data.clone();
        st.stats.reads += 1;
        st.stats.bytes_read += data.len() as u64;
        Ok(data)
    }

    fn read_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        st.stats.reads += 1;
        st.stats.bytes_read += buf.len() as u64;
        let data = &st.inode(name)?.data;
        let bytes = usize::try_from(offset)
            .ok()
            .and_then(|at| data.get(at..at.checked_add(buf.len())?))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(bytes);
        Ok(())
    }

    fn len(&self, name: &str) -> io::Result<u64> {
        Ok(self.state.borrow().inode(name)?.data.len() as u64)
    }

    fn create(&self, name: &str) -> io::Result<SimFile> {
        let mut st = self.state.borrow_mut();
        let inode = match st.names.get(name) {
            Some(&id) => {
                let inode = live(&mut st, id);
                inode.data.clear();
                inode.pending.push(Pending::SetLen(0));
                id
            }
            None => {
                let id = st.next_inode;
                st.next_inode += 1;
                st.inodes.insert(id, Inode::default());
                st.link(name, id);
                id
            }
        };
        Ok(SimFile {
            fs: self.clone(),
            inode,
            generation: st.generation,
        })
    }

    fn open_append(&self, name: &str) -> io::Result<SimFile> {
        let st = self.state.borrow();
        let inode = *st.names.get(name).ok_or_else(|| not_found(name))?;
        Ok(SimFile {
            fs: self.clone(),
            inode,
            generation: st.generation,
        })
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        let id = st.names.remove(from).ok_or_else(|| not_found(from))?;
        st.names.insert(to.to_string(), id);
        st.journal.push(NsOp::Rename {
            from: from.to_string(),
            to: to.to_string(),
        });
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        st.names.remove(name).ok_or_else(|| not_found(name))?;
        st.journal.push(NsOp::Unlink {
            name: name.to_string(),
        });
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        st.stats.dir_syncs += 1;
        if fails(&mut st.fail_dir_sync) {
            st.stats.failed_syncs += 1;
            return Err(eio("fsync dir"));
        }
        st.durable_names = st.names.clone();
        st.journal.clear();
        st.collect_garbage();
        Ok(())
    }

    fn try_clone(&self) -> io::Result<SimFs> {
        Ok(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(fs: &SimFs, name: &str, bytes: &[u8]) -> SimFile {
        let mut f = fs.create(name).expect("create");
        f.write_all(bytes).expect("write");
        f
    }

    /// Every file's content, by name.
    fn contents(fs: &SimFs) -> BTreeMap<String, Vec<u8>> {
        let names = fs.list(usize::MAX - 1).expect("ls");
        names
            .into_iter()
            .map(|n| {
                let bytes = fs.read(&n).expect("read");
                (n, bytes)
            })
            .collect()
    }

    /// A synced file, a synced name, and unsynced work on top.
    fn scenario() -> SimFs {
        let fs = SimFs::new();
        let mut a = put(&fs, "a", b"durable");
        a.sync_data().expect("fsync");
        fs.sync_dir().expect("fsync dir");
        a.write_all(&[7; 100]).expect("write");
        a.write_all(&[8; 50]).expect("write");
        put(&fs, "b", b"new file, nothing synced");
        let mut c = put(&fs, "c", b"synced, name not");
        c.sync_data().expect("fsync");
        fs.rename("c", "d").expect("rename");
        fs
    }

    #[test]
    fn synced_bytes_always_survive_and_the_rest_is_a_prefix() {
        let (mut names, mut lens) = (BTreeSet::new(), BTreeSet::new());
        let mut garbled = 0;
        for seed in 0..500 {
            let fs = scenario();
            let report = fs.crash(seed);
            let got = contents(&fs);
            let a = got.get("a").expect("a was synced with its name");
            assert!(a.starts_with(b"durable"), "seed {seed}");
            let written: Vec<u8> = [&b"durable"[..], &[7; 100], &[8; 50]].concat();
            let f = report
                .files
                .iter()
                .find(|f| f.name == "a")
                .expect("reported");
            let mut want = written[..a.len()].to_vec();
            if let Some(at) = f.garbled_at {
                // One flipped bit, among the last GARBLED_TAIL_BYTES, never a synced byte.
                assert!(
                    at >= 7 && at + GARBLED_TAIL_BYTES >= a.len() as u64,
                    "seed {seed}: {at}"
                );
                want[at as usize] = a[at as usize];
                assert_eq!((want[at as usize] ^ written[at as usize]).count_ones(), 1);
                garbled += 1;
            }
            assert_eq!(a, &want, "seed {seed}: a is a prefix of what was written");
            lens.insert(a.len());
            // "c" is there if its creation survived, as "d" if the rename
            // did too; with its synced content either way.
            assert!(
                !(got.contains_key("c") && got.contains_key("d")),
                "seed {seed}"
            );
            if let Some(c) = got.get("c").or(got.get("d")) {
                assert_eq!(c, b"synced, name not");
            }
            names.insert(got.keys().cloned().collect::<Vec<_>>());
        }
        // All kept, and the first write torn.
        assert!(
            lens.contains(&157) && lens.first() < Some(&107) && lens.len() > 20,
            "{lens:?}"
        );
        assert!(garbled > 50, "{garbled}");
        // The journal kept none, some or all of: create b, rename c -> d.
        assert!(names.len() >= 3, "{names:?}");
    }

    #[test]
    fn same_calls_and_seed_same_disk() {
        for seed in 0..50 {
            let (x, y) = (scenario(), scenario());
            assert_eq!(x.crash(seed), y.crash(seed));
            assert_eq!(contents(&x), contents(&y));
        }
    }

    #[test]
    fn a_removed_name_comes_back_until_the_directory_is_synced() {
        let history = || {
            let fs = SimFs::new();
            put(&fs, "gone", b"x").sync_data().expect("fsync");
            fs.sync_dir().expect("fsync dir");
            fs.remove("gone").expect("remove");
            assert!(fs.read("gone").is_err());
            fs
        };
        let back = (0..20)
            .filter(|&seed| {
                let fs = history();
                fs.crash(seed);
                fs.read("gone").is_ok()
            })
            .count();
        assert!(back > 0 && back < 20, "{back}");
        let fs = history();
        fs.sync_dir().expect("fsync dir");
        fs.crash(1);
        assert!(fs.read("gone").is_err());
    }

    #[test]
    fn a_failed_fsync_may_or_may_not_have_made_the_data_durable() {
        let mut lens = BTreeSet::new();
        for seed in 0..100 {
            let fs = SimFs::new();
            let mut f = put(&fs, "f", b"0123456789");
            fs.sync_dir().expect("fsync dir");
            fs.fail_next_sync();
            assert!(f.sync_data().is_err());
            assert_eq!(fs.stats().failed_syncs, 1);
            fs.crash(seed);
            lens.insert(fs.read("f").expect("read").len());
        }
        // Durable, or not (then torn anywhere).
        assert!(
            lens.contains(&10) && lens.iter().any(|&l| l < 10),
            "{lens:?}"
        );
        // Countdown: two fsyncs pass, the third fails.
        let fs = SimFs::new();
        let mut f = put(&fs, "f", b"x");
        fs.fail_sync_after(2);
        assert!(f.sync_data().is_ok() && f.sync_data().is_ok());
        assert!(f.sync_data().is_err());
        assert!(f.sync_data().is_ok());
    }

    #[test]
    fn bit_rot_stale_handles_and_counters() {
        let fs = SimFs::new();
        let mut f = put(&fs, "f", b"abc");
        f.sync_data().expect("fsync");
        fs.sync_dir().expect("fsync dir");
        fs.corrupt_at_rest("f", 1).expect("rot");
        assert_eq!(fs.read("f").expect("read"), b"acc");
        assert!(fs.corrupt_at_rest("f", 3).is_err(), "not a durable byte");
        fs.crash(0);
        assert_eq!(fs.read("f").expect("read"), b"acc");
        assert!(
            f.write_all(b"x").is_err(),
            "a handle from before the crash is stale"
        );
        let mut g = fs.open_append("f").expect("open");
        g.write_all(b"d").expect("write");
        let mut buf = [0u8; 2];
        fs.read_at("f", 2, &mut buf).expect("read at");
        assert_eq!(&buf, b"cd");
        assert!(fs.read_at("f", 3, &mut buf).is_err(), "past the end");
        g.set_len(1).expect("set len");
        g.write_all(b"z").expect("write");
        assert_eq!(fs.read("f").expect("read"), b"az");
        let s = fs.stats();
        assert_eq!((s.writes, s.syncs, s.dir_syncs, s.crashes), (3, 1, 1, 1));
        assert_eq!(fs.names(), ["f"]);
    }
}
