//! The guest's global allocator (wasm32, feature `guest-alloc`, on by
//! default): size-class free lists in front of the standard allocator.
//!
//! A procedure call makes a few dozen small, short-lived allocations
//! (decoded rows and values, result payloads). Through dlmalloc each
//! malloc/free pair costs a few hundred Wasm instructions, a large share of
//! a short call's fuel; a free-list pop or push costs about ten.
//!
//! Owns: the small blocks (up to `SMALL_BYTES_MAX` bytes, alignment up to
//! `GRANULE_BYTES`), carved from `CHUNK_BYTES` chunks of the standard
//! allocator and kept on one free list per size class when freed; anything
//! larger or more aligned goes straight to the standard allocator. Must
//! not: grow without bound in a loop that frees what it allocates (a freed
//! block is reused by the next request of its class; memory held is the
//! peak of live blocks per class), or be used from more than one thread
//! (it is only installed on wasm32 without the `atomics` feature).
//!
//! ```text
//!   alloc(size <= 512) -> pop free[class] | carve from chunk | new chunk
//!   dealloc            -> push free[class]
//!   larger / over-aligned -> System
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;

/// Largest request served from a size class.
pub const SMALL_BYTES_MAX: usize = 512;
/// Size-class step, and the alignment of every small block.
pub const GRANULE_BYTES: usize = 16;
const CLASSES: usize = SMALL_BYTES_MAX / GRANULE_BYTES;
/// Bytes taken from the standard allocator at a time for small blocks.
pub const CHUNK_BYTES: usize = 64 << 10;

/// The size class of a small request (class `c` holds blocks of
/// `(c + 1) * GRANULE_BYTES` bytes), or None if the request goes to
/// `System`.
#[inline]
fn class_of(size: usize, align: usize) -> Option<usize> {
    if size <= SMALL_BYTES_MAX && align <= GRANULE_BYTES {
        Some(size.saturating_sub(1) / GRANULE_BYTES)
    } else {
        None
    }
}

/// The free lists and the chunk being carved. Not thread-safe.
pub struct Pool {
    /// Heads of the free lists; a free block's first word points to the next.
    free: [*mut u8; CLASSES],
    /// The unused rest of the current chunk: `[next, end)`.
    next: *mut u8,
    end: *mut u8,
}

impl Pool {
    /// An empty pool; it takes its first chunk on the first request.
    pub const fn new() -> Pool {
        Pool {
            free: [ptr::null_mut(); CLASSES],
            next: ptr::null_mut(),
            end: ptr::null_mut(),
        }
    }

    /// A block for `layout`, or null if out of memory.
    ///
    /// # Safety
    /// As `GlobalAlloc::alloc`.
    #[inline]
    pub unsafe fn alloc(&mut self, layout: Layout) -> *mut u8 {
        let Some(c) = class_of(layout.size(), layout.align()) else {
            return unsafe { System.alloc(layout) };
        };
        let head = self.free[c];
        if head.is_null() {
            return self.carve(c);
        }
        // SAFETY: `head` is a freed block of this class; its first word
        // holds the next free block (written by `dealloc`).
        self.free[c] = unsafe { head.cast::<*mut u8>().read() };
        head
    }

    /// Frees a block `alloc` returned for `layout`.
    ///
    /// # Safety
    /// As `GlobalAlloc::dealloc`.
    #[inline]
    pub unsafe fn dealloc(&mut self, block: *mut u8, layout: Layout) {
        let Some(c) = class_of(layout.size(), layout.align()) else {
            return unsafe { System.dealloc(block, layout) };
        };
        // SAFETY: the block is at least GRANULE_BYTES long and aligned to
        // them, so a pointer fits in its first word; the caller gives it up.
        unsafe { block.cast::<*mut u8>().write(self.free[c]) };
        self.free[c] = block;
    }

    /// Resizes a block: in place when the class stays the same.
    ///
    /// # Safety
    /// As `GlobalAlloc::realloc`.
    pub unsafe fn realloc(&mut self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = class_of(layout.size(), layout.align());
        let new = class_of(new_size, layout.align());
        match (old, new) {
            (Some(a), Some(b)) if a == b => block,
            // SAFETY: the caller's guarantees, passed on.
            (None, None) => unsafe { System.realloc(block, layout, new_size) },
            _ => {
                // SAFETY: `new_size` with the old alignment is a valid
                // layout (the caller guarantees it does not overflow).
                let new_layout =
                    unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                let moved = unsafe { self.alloc(new_layout) };
                if !moved.is_null() {
                    // SAFETY: both blocks hold at least the smaller size,
                    // and they are distinct.
                    unsafe {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                }
                moved
            }
        }
    }

    /// A new block of class `c` from the current chunk, or a new chunk.
    #[cold]
    fn carve(&mut self, c: usize) -> *mut u8 {
        let size = (c + 1) * GRANULE_BYTES;
        if (self.end as usize) - (self.next as usize) < size {
            let chunk = Layout::from_size_align(CHUNK_BYTES, GRANULE_BYTES)
                .expect("CHUNK_BYTES and GRANULE_BYTES make a valid layout");
            // SAFETY: the layout is not zero-sized. The rest of the old
            // chunk (under SMALL_BYTES_MAX bytes) is left unused.
            let base = unsafe { System.alloc(chunk) };
            if base.is_null() {
                return base;
            }
            self.next = base;
            self.end = base.wrapping_add(CHUNK_BYTES);
        }
        let block = self.next;
        self.next = block.wrapping_add(size);
        block
    }
}

impl Default for Pool {
    fn default() -> Pool {
        Pool::new()
    }
}

/// `Pool` as the global allocator of a single-threaded guest.
pub struct GuestAlloc(UnsafeCell<Pool>);

impl GuestAlloc {
    /// An allocator with an empty pool.
    pub const fn new() -> GuestAlloc {
        GuestAlloc(UnsafeCell::new(Pool::new()))
    }
}

impl Default for GuestAlloc {
    fn default() -> GuestAlloc {
        GuestAlloc::new()
    }
}

// SAFETY: only installed where there is one thread (wasm32 without
// `atomics`), and no method re-enters another, so the pool is never
// borrowed twice at once.
unsafe impl Sync for GuestAlloc {}

// SAFETY: `Pool` returns blocks of at least the requested size and
// alignment, never hands out a block twice, and sends everything it does
// not serve itself to `System` with the caller's layout.
unsafe impl GlobalAlloc for GuestAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { (*self.0.get()).alloc(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        unsafe { (*self.0.get()).dealloc(block, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if class_of(layout.size(), layout.align()).is_none() {
            // The standard allocator knows when fresh memory is zero already.
            return unsafe { System.alloc_zeroed(layout) };
        }
        let block = unsafe { self.alloc(layout) };
        if !block.is_null() {
            // SAFETY: the block holds `layout.size()` bytes.
            unsafe { ptr::write_bytes(block, 0, layout.size()) };
        }
        block
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe { (*self.0.get()).realloc(block, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn classes_cover_small_requests_only() {
        assert_eq!(class_of(1, 1), Some(0));
        assert_eq!(class_of(16, 8), Some(0));
        assert_eq!(class_of(17, 8), Some(1));
        assert_eq!(class_of(SMALL_BYTES_MAX, 16), Some(CLASSES - 1));
        assert_eq!(class_of(SMALL_BYTES_MAX + 1, 1), None);
        assert_eq!(class_of(8, 32), None);
    }

    #[test]
    fn freed_blocks_are_reused_not_leaked() {
        let mut pool = Pool::new();
        let l = layout(24, 8);
        unsafe {
            let a = pool.alloc(l);
            let b = pool.alloc(l);
            assert!(!a.is_null() && a != b);
            assert_eq!(a as usize % GRANULE_BYTES, 0);
            pool.dealloc(a, l);
            assert_eq!(pool.alloc(l), a, "a freed block is reused first");
            // A loop that frees what it allocates stays in one chunk.
            let first = pool.next;
            for _ in 0..100_000 {
                let x = pool.alloc(layout(100, 8));
                x.write_bytes(0xAB, 100);
                pool.dealloc(x, layout(100, 8));
            }
            assert!(pool.next as usize - first as usize <= 112);
            pool.dealloc(a, l);
            pool.dealloc(b, l);
        }
    }

    #[test]
    fn blocks_do_not_overlap_across_chunks() {
        let mut pool = Pool::new();
        let l = layout(SMALL_BYTES_MAX, 16);
        let n = 3 * CHUNK_BYTES / SMALL_BYTES_MAX;
        let mut blocks: Vec<*mut u8> = (0..n).map(|_| unsafe { pool.alloc(l) }).collect();
        for (i, b) in blocks.iter().enumerate() {
            unsafe { b.write_bytes(i as u8, SMALL_BYTES_MAX) };
        }
        for (i, b) in blocks.iter().enumerate() {
            let s = unsafe { std::slice::from_raw_parts(*b, SMALL_BYTES_MAX) };
            assert!(s.iter().all(|x| *x == i as u8), "block {i} was overwritten");
        }
        blocks.sort();
        blocks.dedup();
        assert_eq!(blocks.len(), n);
        // Chunks are never returned, so the blocks are not freed either.
    }

    #[test]
    fn realloc_keeps_contents_across_classes_and_to_system() {
        let mut pool = Pool::new();
        unsafe {
            let mut p = pool.alloc(layout(4, 1));
            p.copy_from(b"abcd".as_ptr(), 4);
            let mut size = 4;
            for new_size in [8, 16, 40, 300, 600, 5000, 200, 3] {
                let same_class =
                    class_of(size, 1) == class_of(new_size, 1) && class_of(size, 1).is_some();
                let q = pool.realloc(p, layout(size, 1), new_size);
                assert!(!q.is_null());
                if same_class {
                    assert_eq!(q, p);
                }
                let kept = std::slice::from_raw_parts(q, 3);
                assert_eq!(kept, b"abc", "{size} -> {new_size}");
                p = q;
                size = new_size;
            }
            pool.dealloc(p, layout(size, 1));
        }
    }
}
