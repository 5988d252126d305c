//! The syntax tree compiled to a Thompson NFA: a vector of instructions, each naming the ones it
//! goes on to.

use crate::class::Class;
use crate::parse::{Look, Node, Parsed};
use crate::Error;

/// The most instructions a pattern may compile to, counted repetitions expanded.
pub(crate) const MAX_INSTS: usize = 20_000;

/// One NFA instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inst {
    /// Consume one code point of `classes[set]`, then go to `next`.
    Class { set: u32, next: u32 },
    /// Go to `next` when the assertion holds at the current position.
    Look { look: Look, next: u32 },
    /// Go to both.
    Split { a: u32, b: u32 },
    /// Go to `next` (an empty sub-pattern).
    Nop { next: u32 },
    /// The pattern has matched.
    Match,
}

/// A compiled pattern.
#[derive(Clone, Debug)]
pub(crate) struct Prog {
    pub insts: Vec<Inst>,
    pub classes: Vec<Class>,
    pub start: u32,
    /// Whether every match must begin at the start of the input (each way through the pattern
    /// passes `^` before anything else): the search then stops once no thread is left.
    pub anchored: bool,
}

impl Prog {
    /// The instruction at `pc` (`Match` for an out-of-range `pc`, which compile never makes).
    pub fn inst(&self, pc: u32) -> Inst {
        self.insts.get(pc as usize).copied().unwrap_or(Inst::Match)
    }

    /// Whether `classes[set]` contains `c`.
    pub fn class_contains(&self, set: u32, c: char) -> bool {
        self.classes
            .get(set as usize)
            .is_some_and(|class| class.contains(c as u32))
    }
}

/// An instruction field still to be pointed at what follows.
#[derive(Clone, Copy)]
enum Hole {
    Next(u32),
    SplitA(u32),
    SplitB(u32),
}

/// A compiled piece: where it starts and the fields that must go to whatever comes after it.
struct Frag {
    start: u32,
    holes: Vec<Hole>,
}

struct Compiler {
    insts: Vec<Inst>,
}

/// Compiles a parsed pattern.
pub(crate) fn compile(parsed: &Parsed) -> Result<Prog, Error> {
    let mut c = Compiler { insts: Vec::new() };
    let frag = c.node(&parsed.node, 0)?;
    let end = c.push(Inst::Match, 0)?;
    c.patch(&frag.holes, end);
    let anchored = anchored(&c.insts, frag.start);
    Ok(Prog {
        insts: c.insts,
        classes: parsed.classes.clone(),
        start: frag.start,
        anchored,
    })
}

/// Whether no instruction that consumes input or matches is reachable from `start` without
/// passing a `^`.
fn anchored(insts: &[Inst], start: u32) -> bool {
    let mut seen = vec![false; insts.len()];
    let mut stack = vec![start];
    while let Some(pc) = stack.pop() {
        match seen.get_mut(pc as usize) {
            Some(s) if !*s => *s = true,
            _ => continue,
        }
        match insts.get(pc as usize) {
            Some(Inst::Look {
                look: Look::Start, ..
            }) => {}
            Some(Inst::Look { next, .. } | Inst::Nop { next }) => stack.push(*next),
            Some(Inst::Split { a, b }) => {
                stack.push(*a);
                stack.push(*b);
            }
            _ => return false,
        }
    }
    true
}

impl Compiler {
    fn push(&mut self, inst: Inst, offset: usize) -> Result<u32, Error> {
        if self.insts.len() >= MAX_INSTS {
            return Err(Error::new(
                offset,
                "pattern too large: more than 20,000 instructions once counted repetitions are expanded",
            ));
        }
        self.insts.push(inst);
        Ok((self.insts.len() - 1) as u32)
    }

    fn patch(&mut self, holes: &[Hole], to: u32) {
        for &hole in holes {
            let (pc, which) = match hole {
                Hole::Next(pc) => (pc, 0),
                Hole::SplitA(pc) => (pc, 1),
                Hole::SplitB(pc) => (pc, 2),
            };
            if let Some(inst) = self.insts.get_mut(pc as usize) {
                match (inst, which) {
                    (
                        Inst::Class { next, .. } | Inst::Look { next, .. } | Inst::Nop { next },
                        0,
                    ) => *next = to,
                    (Inst::Split { a, .. }, 1) => *a = to,
                    (Inst::Split { b, .. }, 2) => *b = to,
                    _ => {}
                }
            }
        }
    }

    /// A one-instruction piece whose `next` is open.
    fn single(&mut self, inst: Inst, offset: usize) -> Result<Frag, Error> {
        let pc = self.push(inst, offset)?;
        Ok(Frag {
            start: pc,
            holes: vec![Hole::Next(pc)],
        })
    }

    /// `offset`: where in the pattern the enclosing repetition starts, for the size error.
    fn node(&mut self, node: &Node, offset: usize) -> Result<Frag, Error> {
        match node {
            Node::Empty => self.single(Inst::Nop { next: 0 }, offset),
            Node::Class(set) => self.single(Inst::Class { set: *set, next: 0 }, offset),
            Node::Look(look) => self.single(
                Inst::Look {
                    look: *look,
                    next: 0,
                },
                offset,
            ),
            Node::Concat(items) => {
                let mut first: Option<Frag> = None;
                let mut holes = Vec::new();
                for item in items {
                    let f = self.node(item, offset)?;
                    self.patch(&holes, f.start);
                    holes = f.holes;
                    if first.is_none() {
                        first = Some(Frag {
                            start: f.start,
                            holes: Vec::new(),
                        });
                    }
                }
                match first {
                    Some(f) => Ok(Frag {
                        start: f.start,
                        holes,
                    }),
                    None => self.single(Inst::Nop { next: 0 }, offset),
                }
            }
            Node::Alt(alts) => {
                let mut holes = Vec::new();
                let mut start = None;
                let mut prev_split: Option<u32> = None;
                let count = alts.len();
                for (i, alt) in alts.iter().enumerate() {
                    let entry = if i + 1 < count {
                        let split = self.push(Inst::Split { a: 0, b: 0 }, offset)?;
                        let f = self.node(alt, offset)?;
                        self.patch(&[Hole::SplitA(split)], f.start);
                        holes.extend(f.holes);
                        split
                    } else {
                        let f = self.node(alt, offset)?;
                        holes.extend(f.holes);
                        f.start
                    };
                    if let Some(p) = prev_split {
                        self.patch(&[Hole::SplitB(p)], entry);
                    }
                    if start.is_none() {
                        start = Some(entry);
                    }
                    prev_split = (i + 1 < count).then_some(entry);
                }
                match start {
                    Some(start) => Ok(Frag { start, holes }),
                    None => self.single(Inst::Nop { next: 0 }, offset),
                }
            }
            Node::Repeat {
                node,
                min,
                max,
                offset: at,
            } => self.repeat(node, *min, *max, *at),
        }
    }

    fn repeat(
        &mut self,
        node: &Node,
        min: u32,
        max: Option<u32>,
        at: usize,
    ) -> Result<Frag, Error> {
        // The pieces in sequence: `min` copies, then either a loop or `max - min` optional copies.
        let mut start: Option<u32> = None;
        let mut holes: Vec<Hole> = Vec::new();
        let mut link = |c: &mut Compiler, entry: u32, holes: &mut Vec<Hole>| {
            c.patch(holes, entry);
            holes.clear();
            if start.is_none() {
                start = Some(entry);
            }
        };
        let mut last_copy = None;
        for _ in 0..min {
            let f = self.node(node, at)?;
            link(self, f.start, &mut holes);
            holes = f.holes;
            last_copy = Some(f.start);
        }
        match max {
            None => match last_copy {
                // x{n,}: after the last required copy, loop back to it or go on.
                Some(copy) => {
                    let split = self.push(Inst::Split { a: copy, b: 0 }, at)?;
                    link(self, split, &mut holes);
                    holes = vec![Hole::SplitB(split)];
                }
                // x*: a split before one copy, which loops back to the split.
                None => {
                    let split = self.push(Inst::Split { a: 0, b: 0 }, at)?;
                    let f = self.node(node, at)?;
                    self.patch(&[Hole::SplitA(split)], f.start);
                    self.patch(&f.holes, split);
                    link(self, split, &mut holes);
                    holes = vec![Hole::SplitB(split)];
                }
            },
            Some(max) => {
                let mut skips = Vec::new();
                for _ in min..max {
                    let split = self.push(Inst::Split { a: 0, b: 0 }, at)?;
                    let f = self.node(node, at)?;
                    self.patch(&[Hole::SplitA(split)], f.start);
                    link(self, split, &mut holes);
                    holes = f.holes;
                    skips.push(Hole::SplitB(split));
                }
                holes.extend(skips);
            }
        }
        match start {
            Some(start) => Ok(Frag { start, holes }),
            // x{0} and x{0,0}: the empty string.
            None => self.single(Inst::Nop { next: 0 }, at),
        }
    }
}
