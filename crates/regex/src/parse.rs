//! The ECMA-262 pattern grammar in Unicode mode (the `u` flag), to a syntax tree.
//!
//! One parser serves both [`crate::Regex::new`] (`strict`: the features it cannot match are
//! refused where they appear) and [`crate::check_syntax`] (they are parsed and discarded).

use crate::class::{self, Class, MAX_CP};
use crate::Error;

/// How deep groups may nest.
pub(crate) const MAX_DEPTH: u32 = 100;

/// A zero-width assertion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Look {
    /// `^`: the start of the input.
    Start,
    /// `$`: the end of the input.
    End,
    /// `\b`: an ASCII word boundary.
    Word,
    /// `\B`: not an ASCII word boundary.
    NotWord,
}

/// The syntax tree.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    /// Matches the empty string.
    Empty,
    /// One code point of the set `classes[i]`.
    Class(u32),
    Look(Look),
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
        /// Where the repeated atom starts in the pattern, for errors.
        offset: usize,
    },
}

/// A parsed pattern: its tree and the sets of code points that the tree's `Class` nodes index.
pub(crate) struct Parsed {
    pub node: Node,
    pub classes: Vec<Class>,
}

/// One item of a class, or the result of an escape.
enum Atom {
    Char(u32),
    Set(Class),
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    strict: bool,
    depth: u32,
    classes: Vec<Class>,
    /// Capturing groups seen.
    groups: u32,
    /// Group names, each with the path of alternatives it is in (for duplicate names).
    names: Vec<(String, Vec<(u32, u32)>)>,
    /// `\N` backreferences (offset, N), checked once the groups are counted.
    backrefs: Vec<(usize, u32)>,
    /// `\k<name>` references, checked once every name is known.
    named_refs: Vec<(usize, String)>,
    /// The (disjunction, alternative) pairs enclosing the current position.
    path: Vec<(u32, u32)>,
    disjunctions: u32,
}

/// Parses `src`. With `strict`, refuses what the matcher cannot do.
pub(crate) fn parse(src: &str, strict: bool) -> Result<Parsed, Error> {
    let mut p = Parser {
        src,
        pos: 0,
        strict,
        depth: 0,
        classes: Vec::new(),
        groups: 0,
        names: Vec::new(),
        backrefs: Vec::new(),
        named_refs: Vec::new(),
        path: Vec::new(),
        disjunctions: 0,
    };
    let node = p.disjunction()?;
    if p.pos < src.len() {
        return Err(Error::new(p.pos, "unmatched `)`"));
    }
    if let Some(&(off, _)) = p.backrefs.iter().find(|&&(_, n)| n > p.groups) {
        return Err(Error::new(
            off,
            "backreference to a group that does not exist",
        ));
    }
    for (off, name) in &p.named_refs {
        if !p.names.iter().any(|(n, _)| n == name) {
            return Err(Error::new(*off, format!("no group is named `{name}`")));
        }
    }
    Ok(Parsed {
        node,
        classes: p.classes,
    })
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek2(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        let ok = self.peek() == Some(c);
        if ok {
            self.pos += c.len_utf8();
        }
        ok
    }

    fn eat_str(&mut self, s: &str) -> bool {
        let ok = self.rest().starts_with(s);
        if ok {
            self.pos += s.len();
        }
        ok
    }

    /// Errs when strict: `what` is not supported.
    fn refuse(&self, off: usize, what: &str) -> Result<(), Error> {
        if self.strict {
            Err(Error::new(off, format!("{what} is not supported")))
        } else {
            Ok(())
        }
    }

    fn set(&mut self, class: Class) -> Node {
        self.classes.push(class);
        Node::Class(self.classes.len().saturating_sub(1) as u32)
    }

    fn disjunction(&mut self) -> Result<Node, Error> {
        let id = self.disjunctions;
        self.disjunctions += 1;
        let mut alts = Vec::new();
        loop {
            self.path.push((id, alts.len() as u32));
            let alt = self.alternative();
            self.path.pop();
            alts.push(alt?);
            if !self.eat('|') {
                break;
            }
        }
        Ok(match alts.len() {
            1 => alts.pop().unwrap_or(Node::Empty),
            _ => Node::Alt(alts),
        })
    }

    fn alternative(&mut self) -> Result<Node, Error> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let start = self.pos;
            let (node, quantifiable) = self.atom()?;
            let q_off = self.pos;
            match self.quantifier()? {
                Some(_) if !quantifiable => {
                    return Err(Error::new(q_off, "an assertion cannot be quantified"))
                }
                Some((min, max)) => items.push(Node::Repeat {
                    node: Box::new(node),
                    min,
                    max,
                    offset: start,
                }),
                None => items.push(node),
            }
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().unwrap_or(Node::Empty),
            _ => Node::Concat(items),
        })
    }

    /// A quantifier at the current position, if any.
    fn quantifier(&mut self) -> Result<Option<(u32, Option<u32>)>, Error> {
        let off = self.pos;
        let q = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => match self.braces() {
                Some(q) => q,
                None => {
                    return Err(Error::new(
                        off,
                        "incomplete quantifier: escape `{` as `\\{`",
                    ))
                }
            },
            _ => return Ok(None),
        };
        if self.pos == off {
            self.pos += 1;
        }
        if matches!(q, (min, Some(max)) if min > max) {
            return Err(Error::new(off, "numbers out of order in quantifier"));
        }
        self.eat('?');
        Ok(Some(q))
    }

    /// `{n}`, `{n,}` or `{n,m}`; on anything else, consumes nothing.
    fn braces(&mut self) -> Option<(u32, Option<u32>)> {
        let save = self.pos;
        self.pos += 1;
        let q = self.digits().and_then(|min| {
            if self.eat('}') {
                return Some((min, Some(min)));
            }
            if !self.eat(',') {
                return None;
            }
            if self.eat('}') {
                return Some((min, None));
            }
            let max = self.digits()?;
            self.eat('}').then_some((min, Some(max)))
        });
        if q.is_none() {
            self.pos = save;
        }
        q
    }

    /// One or more decimal digits, saturating.
    fn digits(&mut self) -> Option<u32> {
        let mut n: Option<u32> = None;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
            self.pos += 1;
            n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d));
        }
        n
    }

    /// An atom or an assertion, and whether a quantifier may follow it.
    fn atom(&mut self) -> Result<(Node, bool), Error> {
        let off = self.pos;
        let Some(c) = self.bump() else {
            return Ok((Node::Empty, false));
        };
        Ok(match c {
            '^' => (Node::Look(Look::Start), false),
            '$' => (Node::Look(Look::End), false),
            '.' => (self.set(Class::of(class::DOT)), true),
            '(' => return self.group(off),
            '[' => (self.bracket(off)?, true),
            '\\' => return self.atom_escape(off),
            '*' | '+' | '?' => return Err(Error::new(off, "nothing to repeat")),
            '{' => {
                self.pos = off;
                let reason = if self.braces().is_some() {
                    "nothing to repeat"
                } else {
                    "lone `{`: escape it as `\\{`"
                };
                return Err(Error::new(off, reason));
            }
            '}' | ']' => return Err(Error::new(off, format!("lone `{c}`: escape it as `\\{c}`"))),
            _ => (self.set(Class::of(&[(c as u32, c as u32)])), true),
        })
    }

    /// After `(`.
    fn group(&mut self, off: usize) -> Result<(Node, bool), Error> {
        if self.depth >= MAX_DEPTH {
            return Err(Error::new(off, "groups nested deeper than 100"));
        }
        let mut lookaround = false;
        if self.eat('?') {
            if self.eat(':') {
            } else if self.eat('=') {
                self.refuse(off, "lookahead `(?=…)`")?;
                lookaround = true;
            } else if self.eat('!') {
                self.refuse(off, "negative lookahead `(?!…)`")?;
                lookaround = true;
            } else if self.eat_str("<=") {
                self.refuse(off, "lookbehind `(?<=…)`")?;
                lookaround = true;
            } else if self.eat_str("<!") {
                self.refuse(off, "negative lookbehind `(?<!…)`")?;
                lookaround = true;
            } else if self.eat('<') {
                let name = self.group_name(off)?;
                self.add_name(off, name)?;
                self.groups += 1;
            } else {
                self.modifiers(off)?;
            }
        } else {
            self.groups += 1;
        }
        self.depth += 1;
        let node = self.disjunction()?;
        self.depth -= 1;
        if !self.eat(')') {
            return Err(Error::new(off, "unterminated group"));
        }
        Ok(if lookaround {
            (Node::Empty, false)
        } else {
            (node, true)
        })
    }

    /// After `(?` that is no other kind of group: `(?ims-ims:`.
    fn modifiers(&mut self, off: usize) -> Result<(), Error> {
        let mut seen = 0u8;
        let mut dash = false;
        loop {
            let bit = match self.bump() {
                Some('i') => 1,
                Some('m') => 2,
                Some('s') => 4,
                Some('-') if !dash => {
                    dash = true;
                    continue;
                }
                Some(':') if seen != 0 => break,
                _ => return Err(Error::new(off, "invalid group")),
            };
            if seen & bit != 0 {
                return Err(Error::new(off, "repeated flag in a modifier group"));
            }
            seen |= bit;
        }
        self.refuse(off, "a modifier group `(?ims-ims:…)`")
    }

    /// After `(?<` or `\k<`: a group name and `>`.
    fn group_name(&mut self, off: usize) -> Result<String, Error> {
        let mut name = String::new();
        loop {
            let c_off = self.pos;
            let c = match self.bump() {
                Some('>') if !name.is_empty() => return Ok(name),
                Some('\\') if self.eat('u') => {
                    char::from_u32(self.unicode_escape(c_off)?).unwrap_or('\u{0}')
                }
                Some(c) => c,
                None => '\u{0}',
            };
            let ok = if name.is_empty() {
                id_start(c)
            } else {
                id_continue(c)
            };
            if !ok {
                return Err(Error::new(off, "invalid group name"));
            }
            name.push(c);
        }
    }

    fn add_name(&mut self, off: usize, name: String) -> Result<(), Error> {
        let clash = self
            .names
            .iter()
            .any(|(n, path)| *n == name && !exclusive(path, &self.path));
        if clash {
            return Err(Error::new(off, format!("duplicate group name `{name}`")));
        }
        self.names.push((name, self.path.clone()));
        Ok(())
    }

    /// After `\` outside a class.
    fn atom_escape(&mut self, off: usize) -> Result<(Node, bool), Error> {
        match self.peek() {
            Some('b') => {
                self.pos += 1;
                Ok((Node::Look(Look::Word), false))
            }
            Some('B') => {
                self.pos += 1;
                Ok((Node::Look(Look::NotWord), false))
            }
            Some('1'..='9') => {
                self.refuse(off, "backreference")?;
                let n = self.digits().unwrap_or(0);
                self.backrefs.push((off, n));
                Ok((Node::Empty, true))
            }
            Some('k') => {
                self.pos += 1;
                self.refuse(off, "named backreference `\\k<…>`")?;
                if !self.eat('<') {
                    return Err(Error::new(
                        off,
                        "invalid named reference: `\\k<name>` expected",
                    ));
                }
                let name = self.group_name(off)?;
                self.named_refs.push((off, name));
                Ok((Node::Empty, true))
            }
            _ => {
                let set = match self.escape(off, false)? {
                    Atom::Char(c) => Class::of(&[(c, c)]),
                    Atom::Set(s) => s,
                };
                Ok((self.set(set), true))
            }
        }
    }

    /// After `\`: a character escape or a class escape (`in_class`: inside `[…]`).
    fn escape(&mut self, off: usize, in_class: bool) -> Result<Atom, Error> {
        let Some(c) = self.bump() else {
            return Err(Error::new(off, "`\\` at end of pattern"));
        };
        let set = |ranges: &[(u32, u32)], negate: bool| {
            let mut s = Class::of(ranges);
            if negate {
                s.negate();
            }
            Ok(Atom::Set(s))
        };
        let cp = match c {
            'd' | 'D' => return set(class::DIGIT, c == 'D'),
            'w' | 'W' => return set(class::WORD, c == 'W'),
            's' | 'S' => return set(class::SPACE, c == 'S'),
            'p' | 'P' => return self.property(off, c == 'P').map(Atom::Set),
            't' => 9,
            'n' => 10,
            'v' => 11,
            'f' => 12,
            'r' => 13,
            'b' if in_class => 8,
            '-' if in_class => c as u32,
            'c' => match self.peek() {
                Some(l) if l.is_ascii_alphabetic() => {
                    self.pos += 1;
                    l as u32 % 32
                }
                _ => {
                    return Err(Error::new(
                        off,
                        "invalid escape `\\c`: a letter must follow",
                    ))
                }
            },
            '0' if self.peek().is_some_and(|d| d.is_ascii_digit()) => {
                return Err(Error::new(off, "invalid escape: `\\0` followed by a digit"))
            }
            '0' => 0,
            'x' => self
                .hex(2)
                .ok_or_else(|| Error::new(off, "invalid escape `\\x`: two hex digits expected"))?,
            'u' => self.unicode_escape(off)?,
            '^' | '$' | '\\' | '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|'
            | '/' => c as u32,
            _ => return Err(Error::new(off, format!("invalid escape `\\{c}`"))),
        };
        Ok(Atom::Char(cp))
    }

    /// Exactly `n` hex digits.
    fn hex(&mut self, n: usize) -> Option<u32> {
        let mut v = 0;
        for c in self.rest().chars().take(n) {
            v = v * 16 + c.to_digit(16)?;
        }
        if self.rest().len() < n {
            return None;
        }
        self.pos += n;
        Some(v)
    }

    /// After `\u`: `HHHH`, a surrogate pair `HHHH\uHHHH`, or `{H…}`.
    fn unicode_escape(&mut self, off: usize) -> Result<u32, Error> {
        let bad = || Error::new(off, "invalid escape `\\u`: `\\uHHHH` or `\\u{H…}` expected");
        if self.eat('{') {
            let mut v: u32 = 0;
            let mut any = false;
            while let Some(d) = self.peek().and_then(|c| c.to_digit(16)) {
                self.pos += 1;
                v = v.saturating_mul(16).saturating_add(d);
                any = true;
            }
            if !any || !self.eat('}') {
                return Err(bad());
            }
            if v > MAX_CP {
                return Err(Error::new(off, "code point above 10FFFF in `\\u{…}`"));
            }
            return Ok(v);
        }
        let hi = self.hex(4).ok_or_else(bad)?;
        if (0xD800..0xDC00).contains(&hi) && self.rest().starts_with("\\u") {
            let save = self.pos;
            self.pos += 2;
            match self.hex(4) {
                Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                    return Ok(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                }
                _ => self.pos = save,
            }
        }
        Ok(hi)
    }

    /// After `\p` or `\P`.
    fn property(&mut self, off: usize, negate: bool) -> Result<Class, Error> {
        let bad = || {
            Error::new(
                off,
                "invalid property escape: `\\p{Name}` or `\\p{Name=Value}`",
            )
        };
        if !self.eat('{') {
            return Err(bad());
        }
        let start = self.pos;
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        while self.peek().is_some_and(word) {
            self.pos += 1;
        }
        let name = self.src.get(start..self.pos).unwrap_or("");
        let mut value = None;
        if self.eat('=') {
            let v_start = self.pos;
            while self.peek().is_some_and(word) {
                self.pos += 1;
            }
            value = self.src.get(v_start..self.pos);
            if name.bytes().any(|b| b.is_ascii_digit()) || value == Some("") {
                return Err(bad());
            }
        }
        let text = self.src.get(start..self.pos).unwrap_or("");
        if name.is_empty() || !self.eat('}') {
            return Err(bad());
        }
        let Some(mut set) = class::property(name, value) else {
            self.refuse(off, &format!("Unicode property `{text}`"))?;
            return Ok(Class::default());
        };
        if negate {
            if set.props.is_empty() {
                set.negate();
            } else {
                for p in &mut set.props {
                    p.1 = !p.1;
                }
            }
        }
        Ok(set)
    }

    /// After `[`.
    fn bracket(&mut self, open: usize) -> Result<Node, Error> {
        let negated = self.eat('^');
        let mut set = Class::default();
        loop {
            let a_off = self.pos;
            let a = match self.peek() {
                None => return Err(Error::new(open, "unterminated character class")),
                Some(']') => {
                    self.pos += 1;
                    break;
                }
                Some(_) => self.class_atom(open)?,
            };
            if self.peek() == Some('-') && !matches!(self.peek2(), Some(']') | None) {
                self.pos += 1;
                match (a, self.class_atom(open)?) {
                    (Atom::Char(lo), Atom::Char(hi)) if lo <= hi => set.ranges.push((lo, hi)),
                    (Atom::Char(_), Atom::Char(_)) => {
                        return Err(Error::new(a_off, "range out of order in character class"))
                    }
                    _ => {
                        return Err(Error::new(
                            a_off,
                            "a class escape cannot be an end of a range",
                        ))
                    }
                }
            } else {
                match a {
                    Atom::Char(c) => set.ranges.push((c, c)),
                    Atom::Set(s) => {
                        set.ranges.extend(s.ranges);
                        set.props.extend(s.props);
                    }
                }
            }
        }
        set.canonicalize();
        if negated {
            set.negate();
        }
        Ok(self.set(set))
    }

    fn class_atom(&mut self, open: usize) -> Result<Atom, Error> {
        let off = self.pos;
        match self.bump() {
            Some('\\') => self.escape(off, true),
            Some(c) => Ok(Atom::Char(c as u32)),
            None => Err(Error::new(open, "unterminated character class")),
        }
    }
}

/// Whether two groups at these paths can never both take part in a match: they are in different
/// alternatives of one disjunction.
fn exclusive(a: &[(u32, u32)], b: &[(u32, u32)]) -> bool {
    a.iter()
        .zip(b)
        .find(|(x, y)| x != y)
        .is_some_and(|(x, y)| x.0 == y.0)
}

/// ID_Start, exactly for ASCII and approximated by Alphabetic beyond.
fn id_start(c: char) -> bool {
    c == '$' || c == '_' || c.is_ascii_alphabetic() || (!c.is_ascii() && c.is_alphabetic())
}

/// ID_Continue, exactly for ASCII and approximated by Alphabetic or Numeric beyond.
fn id_continue(c: char) -> bool {
    id_start(c)
        || c.is_ascii_digit()
        || c == '\u{200C}'
        || c == '\u{200D}'
        || (!c.is_ascii() && c.is_alphanumeric())
}
