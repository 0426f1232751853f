//! The liveness bitmap of a table's slots.
//!
//! Owns: `Bitmap` (one bit a slot, set = live; push and pop at the end,
//! iteration over set bits). Must not: know what a slot holds.

/// One bit per slot (set = live): small enough to stay in cache for the
/// point lookups that check it.
#[derive(Default)]
pub(super) struct Bitmap {
    words: Vec<u64>,
    /// Number of slots (bits in use).
    len: usize,
}

impl Bitmap {
    pub(super) fn len(&self) -> usize {
        self.len
    }
    /// Bit `i`, or None past the end.
    #[inline]
    pub(super) fn get(&self, i: usize) -> Option<bool> {
        (i < self.len).then(|| (self.words[i / 64] >> (i % 64)) & 1 == 1)
    }
    /// Bit `i`, which must be in range.
    pub(super) fn is_set(&self, i: usize) -> bool {
        self.get(i).expect("slot within the table")
    }
    pub(super) fn set(&mut self, i: usize, on: bool) {
        assert!(i < self.len, "slot within the table");
        let (w, b) = (i / 64, 1u64 << (i % 64));
        if on {
            self.words[w] |= b;
        } else {
            self.words[w] &= !b;
        }
    }
    pub(super) fn push(&mut self, on: bool) {
        if self.len.is_multiple_of(64) {
            self.words.push(0);
        }
        self.len += 1;
        self.set(self.len - 1, on);
    }
    /// Drops the last bit (which the caller has cleared or is discarding).
    pub(super) fn pop(&mut self) {
        assert!(self.len > 0, "pop from an empty bitmap");
        self.set(self.len - 1, false);
        self.len -= 1;
        if self.len.is_multiple_of(64) {
            self.words.pop();
        }
    }
    /// Positions of set bits, ascending.
    pub(super) fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let b = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                Some(w * 64 + b)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Bitmap;

    #[test]
    fn bitmap_tracks_bits_across_words_and_pops_back_to_empty() {
        let mut b = Bitmap::default();
        let on = |i: usize| i.is_multiple_of(3) || i == 64 || i == 129;
        for i in 0..130 {
            b.push(on(i));
        }
        let want: Vec<usize> = (0..130).filter(|&i| on(i)).collect();
        assert_eq!(b.ones().collect::<Vec<_>>(), want);
        assert_eq!((b.len(), b.words.len()), (130, 3));
        assert_eq!(
            (b.get(129), b.get(128), b.get(130)),
            (Some(true), Some(false), None)
        );
        b.set(129, false);
        b.set(1, true);
        assert!(b.is_set(1) && !b.is_set(129));
        b.set(129, true);
        b.pop();
        b.push(false);
        assert_eq!(
            b.get(129),
            Some(false),
            "a popped set bit does not come back"
        );
        b.pop();
        b.pop();
        assert_eq!((b.len(), b.words.len()), (128, 2));
        while b.len() > 0 {
            b.pop();
        }
        assert!(b.words.is_empty() && b.ones().next().is_none());
    }
}
