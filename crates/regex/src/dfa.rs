//! A DFA built eagerly from the NFA by subset construction, for the patterns that need no `char`
//! method and no word boundary (most JSON Schema patterns): a search then costs one table look-up
//! per code point and allocates nothing.
//!
//! The input alphabet is the partition of the code points into the classes no instruction of the
//! pattern tells apart (for `^[a-z]+$`: below `a`, `a`–`z`, above `z`). Each DFA state is the set
//! of NFA instructions that can be waiting at a position, with the pattern's start added at every
//! position (the search is unanchored). A `$` still pending in a state is resolved at the end of
//! the input; a `^` is resolved while building, since only the first state is at the start.

use crate::class::MAX_CP;
use crate::parse::Look;
use crate::prog::{Inst, Prog};
use std::collections::HashMap;

/// The most DFA states built before giving up (the NFA simulation is used instead).
const MAX_STATES: usize = 256;
/// The most alphabet classes.
const MAX_CLASSES: usize = 256;
/// The most NFA instructions a DFA is attempted for.
const MAX_INSTS: usize = 4096;
/// The most closure steps spent building, so a large pattern's construction stays quick.
const MAX_WORK: usize = 4_000_000;

#[derive(Clone, Debug)]
pub(crate) struct Dfa {
    /// The alphabet class of each ASCII code point.
    ascii: [u8; 128],
    /// Beyond ASCII: the first code point of each run of one class, sorted, and its class.
    starts: Vec<u32>,
    ids: Vec<u8>,
    classes: usize,
    /// `trans[state * classes + class]`: the next state, times `classes`.
    trans: Vec<u32>,
    /// Per state: a match has ended here.
    matched: Vec<bool>,
    /// Per state: the pattern matches if the input ends here.
    end_ok: Vec<bool>,
    /// Per state: no match can follow.
    dead: Vec<bool>,
}

/// A state while building: the waiting instructions (`Class`, `Match` and pending `$`).
type Leaves = Vec<u32>;

struct Builder<'a> {
    prog: &'a Prog,
    work: usize,
    stack: Vec<u32>,
    seen: Vec<bool>,
}

impl Builder<'_> {
    /// The waiting instructions reachable from `seeds` without consuming input; `None` when the
    /// work budget is spent.
    fn closure(&mut self, seeds: &[u32], at_start: bool) -> Option<Leaves> {
        self.seen.iter_mut().for_each(|s| *s = false);
        let mut leaves = Vec::new();
        self.stack.clear();
        self.stack.extend(seeds.iter().rev());
        while let Some(pc) = self.stack.pop() {
            match self.seen.get_mut(pc as usize) {
                Some(seen) if !*seen => *seen = true,
                _ => continue,
            }
            self.work += 1;
            if self.work > MAX_WORK {
                return None;
            }
            match self.prog.inst(pc) {
                Inst::Class { .. }
                | Inst::Match
                | Inst::Look {
                    look: Look::End, ..
                } => leaves.push(pc),
                Inst::Look {
                    look: Look::Start,
                    next,
                } => {
                    if at_start {
                        self.stack.push(next)
                    }
                }
                Inst::Look { .. } => return None,
                Inst::Nop { next } => self.stack.push(next),
                Inst::Split { a, b } => {
                    self.stack.push(b);
                    self.stack.push(a);
                }
            }
        }
        leaves.sort_unstable();
        Some(leaves)
    }

    /// Whether `Match` is reachable from `leaves` at the end of the input.
    fn accepts_at_end(&mut self, leaves: &[u32], at_start: bool) -> Option<bool> {
        let mut seeds = Vec::new();
        for &pc in leaves {
            match self.prog.inst(pc) {
                Inst::Match => return Some(true),
                Inst::Look { next, .. } => seeds.push(next),
                _ => {}
            }
        }
        if seeds.is_empty() {
            return Some(false);
        }
        // Past a `$` every further `$` holds too; follow them until no new ones appear.
        let mut done: Vec<u32> = Vec::new();
        while let Some(seed) = seeds.pop() {
            if done.contains(&seed) {
                continue;
            }
            done.push(seed);
            for pc in self.closure(&[seed], at_start)? {
                match self.prog.inst(pc) {
                    Inst::Match => return Some(true),
                    Inst::Look { next, .. } => seeds.push(next),
                    _ => {}
                }
            }
        }
        Some(false)
    }
}

impl Dfa {
    /// Builds the DFA, or `None` when the pattern needs the NFA simulation (a word boundary, a
    /// property tested by a `char` method) or the DFA would be too large.
    pub(crate) fn build(prog: &Prog) -> Option<Dfa> {
        if prog.insts.len() > MAX_INSTS || prog.classes.iter().any(|c| !c.props.is_empty()) {
            return None;
        }
        let (ascii, starts, ids, members, classes) = alphabet(prog)?;
        let mut b = Builder {
            prog,
            work: 0,
            stack: Vec::new(),
            seen: vec![false; prog.insts.len()],
        };
        let first = b.closure(&[prog.start], true)?;
        let mut index: HashMap<(Leaves, bool), u32> = HashMap::new();
        let mut states: Vec<(Leaves, bool)> = vec![(first.clone(), true)];
        index.insert((first, true), 0);
        let mut dfa = Dfa {
            ascii,
            starts,
            ids,
            classes,
            trans: Vec::new(),
            matched: Vec::new(),
            end_ok: Vec::new(),
            dead: Vec::new(),
        };
        let mut done = 0;
        while let Some((leaves, at_start)) = states.get(done).cloned() {
            done += 1;
            let matched = leaves.iter().any(|&pc| prog.inst(pc) == Inst::Match);
            dfa.end_ok.push(b.accepts_at_end(&leaves, at_start)?);
            dfa.dead.push(leaves.is_empty() && !at_start);
            dfa.matched.push(matched);
            for class in 0..classes {
                let mut seeds: Vec<u32> = leaves
                    .iter()
                    .filter_map(|&pc| match prog.inst(pc) {
                        Inst::Class { set, next }
                            if members
                                .get(set as usize)
                                .and_then(|m| m.get(class))
                                .copied()
                                .unwrap_or(false) =>
                        {
                            Some(next)
                        }
                        _ => None,
                    })
                    .collect();
                seeds.push(prog.start);
                let key = (b.closure(&seeds, false)?, false);
                let to = match index.get(&key) {
                    Some(&to) => to,
                    None => {
                        if states.len() >= MAX_STATES {
                            return None;
                        }
                        let to = states.len() as u32;
                        states.push(key.clone());
                        index.insert(key, to);
                        to
                    }
                };
                dfa.trans.push(to * classes as u32);
            }
        }
        Some(dfa)
    }

    /// How many states were built.
    pub(crate) fn states(&self) -> usize {
        self.matched.len()
    }

    fn class_of(&self, c: char) -> usize {
        let cp = c as u32;
        if let Some(&id) = self.ascii.get(cp as usize) {
            return id as usize;
        }
        let run = self.starts.partition_point(|&s| s <= cp).saturating_sub(1);
        self.ids.get(run).copied().unwrap_or(0) as usize
    }

    /// Whether the pattern matches anywhere in `haystack`.
    pub(crate) fn is_match(&self, haystack: &str) -> bool {
        let mut state = 0usize;
        for c in haystack.chars() {
            let s = state / self.classes;
            if self.matched.get(s).copied().unwrap_or(false) {
                return true;
            }
            if self.dead.get(s).copied().unwrap_or(true) {
                return false;
            }
            state = self
                .trans
                .get(state + self.class_of(c))
                .copied()
                .unwrap_or(0) as usize;
        }
        let s = state / self.classes;
        self.matched.get(s).copied().unwrap_or(false)
            || self.end_ok.get(s).copied().unwrap_or(false)
    }
}

/// The alphabet: the ASCII table, the runs beyond ASCII, and for each of the pattern's classes
/// which alphabet classes it contains, and how many classes there are. `None` when there would be more than 256 classes.
#[allow(clippy::type_complexity)]
fn alphabet(prog: &Prog) -> Option<([u8; 128], Vec<u32>, Vec<u8>, Vec<Vec<bool>>, usize)> {
    let mut bounds: Vec<u32> = vec![0];
    for class in &prog.classes {
        for &(lo, hi) in &class.ranges {
            bounds.push(lo);
            if hi < MAX_CP {
                bounds.push(hi + 1);
            }
        }
    }
    bounds.push(128);
    bounds.sort_unstable();
    bounds.dedup();
    // Each run between bounds is inside or outside every class: its signature names its class.
    let mut signatures: HashMap<Vec<bool>, u8> = HashMap::new();
    let mut run_ids = Vec::with_capacity(bounds.len());
    for &start in &bounds {
        let sig: Vec<bool> = prog.classes.iter().map(|c| c.contains(start)).collect();
        let next = signatures.len();
        let id = match signatures.get(&sig) {
            Some(&id) => id,
            None => {
                if next >= MAX_CLASSES {
                    return None;
                }
                signatures.insert(sig, next as u8);
                next as u8
            }
        };
        run_ids.push(id);
    }
    let count = signatures.len();
    let mut members = vec![vec![false; count]; prog.classes.len()];
    for (sig, &id) in &signatures {
        for (set, &inside) in sig.iter().enumerate() {
            if let Some(slot) = members.get_mut(set).and_then(|m| m.get_mut(id as usize)) {
                *slot = inside;
            }
        }
    }
    let id_of = |cp: u32| {
        let run = bounds.partition_point(|&s| s <= cp).saturating_sub(1);
        run_ids.get(run).copied().unwrap_or(0)
    };
    let mut ascii = [0u8; 128];
    for (cp, slot) in ascii.iter_mut().enumerate() {
        *slot = id_of(cp as u32);
    }
    let mut starts = Vec::new();
    let mut ids: Vec<u8> = Vec::new();
    for (&start, &id) in bounds.iter().zip(&run_ids) {
        if start >= 128 && ids.last() != Some(&id) {
            starts.push(start);
            ids.push(id);
        }
    }
    Some((ascii, starts, ids, members, count))
}
