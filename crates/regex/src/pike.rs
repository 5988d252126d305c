//! Breadth-first NFA simulation (a Pike VM without captures): every thread advances one code
//! point at a time, and a set keeps at most one thread per instruction, so a search costs
//! O(instructions × haystack length) whatever the pattern.

use crate::class::is_word;
use crate::parse::Look;
use crate::prog::{Inst, Prog};

/// A set of instruction indexes with O(1) insert, membership and clear.
pub(crate) struct SparseSet {
    dense: Vec<u32>,
    sparse: Vec<u32>,
}

impl SparseSet {
    pub fn new(size: usize) -> SparseSet {
        SparseSet {
            dense: Vec::with_capacity(size),
            sparse: vec![0; size],
        }
    }

    pub fn contains(&self, pc: u32) -> bool {
        self.sparse
            .get(pc as usize)
            .and_then(|&i| self.dense.get(i as usize))
            .is_some_and(|&d| d == pc)
    }

    /// Adds `pc`; false when it was there already (or out of range).
    pub fn insert(&mut self, pc: u32) -> bool {
        if self.contains(pc) {
            return false;
        }
        let Some(slot) = self.sparse.get_mut(pc as usize) else {
            return false;
        };
        *slot = self.dense.len() as u32;
        self.dense.push(pc);
        true
    }

    pub fn clear(&mut self) {
        self.dense.clear();
    }

    pub fn as_slice(&self) -> &[u32] {
        &self.dense
    }
}

/// The code points either side of a position, for the assertions.
#[derive(Clone, Copy)]
pub(crate) struct Context {
    pub prev: Option<char>,
    pub next: Option<char>,
}

impl Context {
    pub fn holds(self, look: Look) -> bool {
        let word = |c: Option<char>| c.is_some_and(is_word);
        match look {
            Look::Start => self.prev.is_none(),
            Look::End => self.next.is_none(),
            Look::Word => word(self.prev) != word(self.next),
            Look::NotWord => word(self.prev) == word(self.next),
        }
    }
}

/// Adds the thread at `pc` and every thread reachable from it without consuming input to `set`.
/// True when one of them is `Match`.
fn add(prog: &Prog, set: &mut SparseSet, stack: &mut Vec<u32>, pc: u32, ctx: Context) -> bool {
    stack.clear();
    stack.push(pc);
    while let Some(pc) = stack.pop() {
        if !set.insert(pc) {
            continue;
        }
        match prog.inst(pc) {
            Inst::Match => return true,
            Inst::Class { .. } => {}
            Inst::Nop { next } => stack.push(next),
            Inst::Look { look, next } => {
                if ctx.holds(look) {
                    stack.push(next);
                }
            }
            Inst::Split { a, b } => {
                stack.push(b);
                stack.push(a);
            }
        }
    }
    false
}

/// Whether `prog` matches anywhere in `haystack`.
pub(crate) fn is_match(prog: &Prog, haystack: &str) -> bool {
    let size = prog.insts.len();
    let mut current = SparseSet::new(size);
    let mut next = SparseSet::new(size);
    let mut stack = Vec::new();
    let mut chars = haystack.chars();
    let mut prev = None;
    let mut ahead = chars.next();
    loop {
        let here = Context { prev, next: ahead };
        // A match may start at every position: the unanchored search.
        if (prev.is_none() || !prog.anchored)
            && add(prog, &mut current, &mut stack, prog.start, here)
        {
            return true;
        }
        if prog.anchored && current.as_slice().is_empty() {
            return false;
        }
        let Some(c) = ahead else {
            return false;
        };
        ahead = chars.next();
        let after = Context {
            prev: Some(c),
            next: ahead,
        };
        next.clear();
        for &pc in current.as_slice() {
            if let Inst::Class { set, next: to } = prog.inst(pc) {
                if prog.class_contains(set, c) && add(prog, &mut next, &mut stack, to, after) {
                    return true;
                }
            }
        }
        std::mem::swap(&mut current, &mut next);
        prev = Some(c);
    }
}
