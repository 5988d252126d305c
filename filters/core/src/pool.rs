//! The allocator of the wasm modules: small blocks from per-size free lists, everything else from
//! the system allocator behind it.
//!
//! A request makes many small allocations (a parsed JSON body is a few hundred strings, maps and
//! vectors; a token's claims, the header copies, the identity) and frees them all at its end.
//! The system allocator of `wasm32-wasip1` (dlmalloc) splits, merges and bins chunks on every
//! call; here a small block is taken from and given back to the list of its size class in a few
//! instructions. A module is one thread (proxy-wasm runs each VM on one worker thread), so the
//! lists need no locking.
//!
//! Memory: a class's blocks come from the system allocator one at a time, at the class's size,
//! and are kept on the list when freed, so later requests reuse them. The list holds at most
//! [`MAX_POOLED`] bytes in all: past that a freed block goes back to the system allocator, which
//! can merge it with its neighbours and serve any size from it. What one request allocates is
//! bounded by the filters' own limits, as before; the pool adds at most [`MAX_POOLED`] bytes of
//! free blocks kept between requests.
//!
//! Growing a block is `GlobalAlloc`'s own `realloc` (allocate, copy, free): every module carries
//! this code, and a specialised one cost more bytes than the copies it would save.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::ptr::null_mut;

/// The block sizes of the classes, in bytes. A request of up to [`MAX_SMALL`] bytes with an
/// alignment of up to [`ALIGN`] gets a block of the smallest class that holds it.
const CLASS_SIZES: [usize; 12] = [8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512];
const CLASSES: usize = CLASS_SIZES.len();
/// The largest request served from the lists.
pub const MAX_SMALL: usize = 512;
/// Every block is aligned to this (and so holds the next-block pointer of the list).
const ALIGN: usize = 8;
/// Bytes of free blocks the lists keep at most (a block freed while they hold this much or more
/// goes back to the system allocator; so they hold less than this plus one block).
pub const MAX_POOLED: usize = 1 << 20;

/// Class index by `(size + 7) / 8`, for sizes 0 to [`MAX_SMALL`].
const CLASS_BY_WORDS: [u8; MAX_SMALL / ALIGN + 1] = class_table();

// Evaluated at compile time: an index out of range would fail the build, not a request.
#[allow(clippy::indexing_slicing, clippy::cast_possible_truncation)]
const fn class_table() -> [u8; MAX_SMALL / ALIGN + 1] {
    let mut table = [0u8; MAX_SMALL / ALIGN + 1];
    let mut words = 0;
    while words < table.len() {
        let size = words * ALIGN;
        let mut class = 0;
        while CLASS_SIZES[class] < size {
            class += 1;
        }
        table[words] = class as u8;
        words += 1;
    }
    table
}

/// The size class of a layout, when the lists serve it.
fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() > ALIGN {
        return None;
    }
    CLASS_BY_WORDS
        .get(layout.size().div_ceil(ALIGN))
        .map(|c| usize::from(*c))
}

/// Size-class free lists in front of `A`.
pub struct Pool<A> {
    backing: A,
    /// The first free block of each class; a free block's first word points at the next.
    free: [Cell<*mut u8>; CLASSES],
    /// Bytes of free blocks on the lists.
    pooled: Cell<usize>,
}

// SAFETY: a wasm32 module without the threads proposal has one thread, so the cells are never
// touched from two threads. (Natively the pool is not `Sync` and cannot be a global allocator.)
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
unsafe impl<A: Sync> Sync for Pool<A> {}

impl<A> Pool<A> {
    pub const fn new(backing: A) -> Self {
        Pool {
            backing,
            free: [const { Cell::new(null_mut()) }; CLASSES],
            pooled: Cell::new(0),
        }
    }

    /// Bytes of free blocks on the lists.
    pub fn pooled(&self) -> usize {
        self.pooled.get()
    }
}

impl<A> Pool<A> {
    /// The list of a layout's class and the class's block size, when the lists serve it.
    fn slot(&self, layout: Layout) -> Option<(&Cell<*mut u8>, usize)> {
        let class = class_of(layout)?;
        Some((self.free.get(class)?, *CLASS_SIZES.get(class)?))
    }
}

#[allow(unsafe_code)]
// SAFETY (the whole impl): a block on a list was allocated by the backing allocator with its
// class's layout (size from `CLASS_SIZES`, at most 512, alignment 8: always a valid layout), so
// its first word can hold a pointer; it is on one list at most and never handed out while on it.
// A block handed out for a layout comes back (per `GlobalAlloc`'s contract) with the same layout,
// which maps to the same class. `pooled` counts the bytes on the lists, so taking a block off
// never takes it below zero.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Pool<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some((head, size)) = self.slot(layout) else {
            return unsafe { self.backing.alloc(layout) };
        };
        let first = head.get();
        if first.is_null() {
            return unsafe {
                self.backing
                    .alloc(Layout::from_size_align_unchecked(size, ALIGN))
            };
        }
        head.set(unsafe { first.cast::<*mut u8>().read() });
        self.pooled.set(self.pooled.get().wrapping_sub(size));
        first
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some((head, size)) = self.slot(layout) else {
            return unsafe { self.backing.dealloc(ptr, layout) };
        };
        if self.pooled.get() >= MAX_POOLED {
            // The lists are full: the block goes back where it came from.
            return unsafe {
                self.backing
                    .dealloc(ptr, Layout::from_size_align_unchecked(size, ALIGN))
            };
        }
        unsafe { ptr.cast::<*mut u8>().write(head.get()) };
        head.set(ptr);
        self.pooled.set(self.pooled.get().wrapping_add(size));
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;
    use std::alloc::System;

    /// A small deterministic generator (xorshift), so a failure can be replayed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    struct Live {
        ptr: *mut u8,
        layout: Layout,
        fill: u8,
    }

    fn fill(live: &Live) {
        unsafe { live.ptr.write_bytes(live.fill, live.layout.size()) };
    }

    fn intact(live: &Live) -> bool {
        (0..live.layout.size()).all(|i| unsafe { live.ptr.add(i).read() } == live.fill)
    }

    #[test]
    fn classes_hold_what_they_serve() {
        for size in 0..=MAX_SMALL {
            for align in [1, 2, 4, 8] {
                let layout = Layout::from_size_align(size, align).unwrap();
                let class = class_of(layout).unwrap();
                assert!(CLASS_SIZES[class] >= size, "size {size}");
                assert!(
                    class == 0 || CLASS_SIZES[class - 1] < size,
                    "size {size}: a smaller class holds it"
                );
            }
        }
        assert_eq!(
            class_of(Layout::from_size_align(MAX_SMALL + 1, 8).unwrap()),
            None
        );
        assert_eq!(class_of(Layout::from_size_align(64, 16).unwrap()), None);
    }

    /// Many blocks of every size, allocated, grown, shrunk and freed in a random order: no two
    /// live blocks overlap (each keeps its own fill byte to the end) and each is aligned.
    #[test]
    fn live_blocks_keep_their_bytes_through_a_random_workload() {
        let pool = Pool::new(System);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut live: Vec<Live> = Vec::new();
        for step in 0..60_000u32 {
            match rng.below(10) {
                0..=4 => {
                    let size = match rng.below(10) {
                        0 => 513 + rng.below(4000) as usize,
                        _ => rng.below(MAX_SMALL as u64 + 1) as usize,
                    };
                    let align = [1, 2, 4, 8, 16, 64][rng.below(6) as usize];
                    let layout = Layout::from_size_align(size, align).unwrap();
                    let ptr = unsafe { pool.alloc(layout) };
                    assert!(!ptr.is_null());
                    assert_eq!(ptr as usize % align, 0, "alignment {align}");
                    let l = Live {
                        ptr,
                        layout,
                        fill: (step % 251) as u8,
                    };
                    fill(&l);
                    live.push(l);
                }
                5..=6 if !live.is_empty() => {
                    let i = rng.below(live.len() as u64) as usize;
                    let mut l = live.swap_remove(i);
                    let new_size = rng.below(1200) as usize;
                    let kept = l.layout.size().min(new_size);
                    let ptr = unsafe { pool.realloc(l.ptr, l.layout, new_size) };
                    assert!(!ptr.is_null());
                    for j in 0..kept {
                        assert_eq!(
                            unsafe { ptr.add(j).read() },
                            l.fill,
                            "realloc lost byte {j}"
                        );
                    }
                    l.ptr = ptr;
                    l.layout = Layout::from_size_align(new_size, l.layout.align()).unwrap();
                    fill(&l);
                    live.push(l);
                }
                _ if !live.is_empty() => {
                    let i = rng.below(live.len() as u64) as usize;
                    let l = live.swap_remove(i);
                    assert!(intact(&l), "a live block was overwritten");
                    unsafe { pool.dealloc(l.ptr, l.layout) };
                }
                _ => {}
            }
            assert!(pool.pooled() < MAX_POOLED + MAX_SMALL);
        }
        for l in live.drain(..) {
            assert!(intact(&l), "a live block was overwritten");
            unsafe { pool.dealloc(l.ptr, l.layout) };
        }
    }

    #[test]
    fn a_freed_block_serves_the_next_request_of_its_class() {
        let pool = Pool::new(System);
        let a = Layout::from_size_align(40, 8).unwrap();
        let b = Layout::from_size_align(33, 1).unwrap(); // the same class (48 bytes)
        let first = unsafe { pool.alloc(a) };
        unsafe { pool.dealloc(first, a) };
        assert_eq!(pool.pooled(), 48);
        let second = unsafe { pool.alloc(b) };
        assert_eq!(first, second);
        assert_eq!(pool.pooled(), 0);
        // Growing moves the bytes into a block of the new size (`GlobalAlloc`'s own `realloc`:
        // allocate, copy, free), and the old block goes back on its list.
        unsafe { second.write_bytes(7, 33) };
        let moved = unsafe { pool.realloc(second, b, 100) };
        assert_ne!(moved, second);
        assert!((0..33).all(|i| unsafe { moved.add(i).read() } == 7));
        assert_eq!(pool.pooled(), 48);
        unsafe { pool.dealloc(moved, Layout::from_size_align(100, 1).unwrap()) };
        let zeroed = unsafe { pool.alloc_zeroed(Layout::from_size_align(100, 1).unwrap()) };
        assert_eq!(zeroed, moved, "the freed 128-byte block is reused");
        assert!((0..100).all(|i| unsafe { zeroed.add(i).read() } == 0));
        unsafe { pool.dealloc(zeroed, Layout::from_size_align(100, 1).unwrap()) };
    }

    #[test]
    fn the_lists_keep_at_most_their_bound() {
        let pool = Pool::new(System);
        let layout = Layout::from_size_align(512, 8).unwrap();
        let blocks: Vec<*mut u8> = (0..(2 * MAX_POOLED / 512))
            .map(|_| unsafe { pool.alloc(layout) })
            .collect();
        for b in blocks {
            unsafe { pool.dealloc(b, layout) };
        }
        assert!(pool.pooled() >= MAX_POOLED && pool.pooled() < MAX_POOLED + 512);
    }
}
