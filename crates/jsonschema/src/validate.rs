//! Validation: one walk over the instance and the compiled nodes, collecting the failures (or
//! stopping at the first, inside `anyOf`/`oneOf`/`not`/`if`/`contains` and for
//! [`crate::Schemas::is_valid`]), with the annotations `unevaluatedProperties` and
//! `unevaluatedItems` need gathered on the way.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

use crate::compile::{Format, Node, ARRAY, BOOLEAN, INTEGER, NULL, NUMBER, OBJECT, STRING};
use crate::Schemas;

/// At most this many failures are reported for one instance.
pub const MAX_ERRORS: usize = 64;

/// How many schemas may be entered at one instance location without moving into the instance
/// (`$ref`s, applicators): beyond it the schema is taken to loop (`{"$ref": "#"}`).
const MAX_HOPS: u32 = 64;

/// How many schemas may be entered one inside the other in all (instance levels and hops
/// together): the walk is recursive, and a module's stack is small.
const MAX_NESTING: u32 = 600;

/// One step of an instance location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    /// An object member, by name.
    Prop(String),
    /// An array item, by index.
    Item(usize),
}

/// What failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An assertion or applicator keyword (`type`, `required`, `anyOf`, `format`, …).
    Keyword(&'static str),
    /// The `false` schema (other than below).
    False,
    /// A member that `additionalProperties: false` or `unevaluatedProperties: false` refuses
    /// (the error's location is the member).
    UnknownMember,
    /// An item that `items: false` or `unevaluatedItems: false` refuses (the location is the
    /// item).
    ExtraItem,
    /// The schema refers to itself without moving into the instance.
    Cycle,
    /// Schemas nested deeper than the validator goes (an instance nested very deep against a
    /// recursive schema).
    TooDeep,
}

/// One failure: what and where in the instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: Kind,
    pub instance: Vec<Token>,
}

impl Error {
    /// The keyword that failed (`false` for the false schema, `additionalProperties`/`items` for
    /// refused members and items, `$ref` for a loop).
    pub fn keyword(&self) -> &'static str {
        match self.kind {
            Kind::Keyword(k) => k,
            Kind::False => "false",
            Kind::UnknownMember => "additionalProperties",
            Kind::ExtraItem => "items",
            Kind::Cycle => "$ref",
            Kind::TooDeep => "depth",
        }
    }
}

/// A set of member or item positions.
#[derive(Default)]
struct Bits {
    low: u64,
    high: Vec<u64>,
}

impl Bits {
    fn set(&mut self, i: usize) {
        if i < 64 {
            self.low |= 1 << i;
        } else {
            let w = i / 64 - 1;
            if self.high.len() <= w {
                self.high.resize(w + 1, 0);
            }
            if let Some(x) = self.high.get_mut(w) {
                *x |= 1 << (i % 64);
            }
        }
    }

    fn get(&self, i: usize) -> bool {
        if i < 64 {
            self.low & (1 << i) != 0
        } else {
            self.high
                .get(i / 64 - 1)
                .is_some_and(|x| x & (1 << (i % 64)) != 0)
        }
    }

    fn union(&mut self, other: &Bits) {
        self.low |= other.low;
        if self.high.len() < other.high.len() {
            self.high.resize(other.high.len(), 0);
        }
        for (a, b) in self.high.iter_mut().zip(&other.high) {
            *a |= b;
        }
    }
}

/// What a schema evaluated of the instance it was applied to (draft 2020-12's annotations of
/// `properties`, `patternProperties`, `additionalProperties`, `unevaluatedProperties`,
/// `prefixItems`, `items`, `contains`, `unevaluatedItems`), by member or item position.
#[derive(Default)]
struct Seen {
    props: Bits,
    /// Items before this index were evaluated.
    items: usize,
    /// Items `contains` matched.
    matched: Bits,
}

impl Seen {
    fn merge(&mut self, other: Seen) {
        self.props.union(&other.props);
        self.items = self.items.max(other.items);
        self.matched.union(&other.matched);
    }
}

#[derive(Clone, Copy)]
enum Step<'v> {
    Prop(&'v str),
    Item(usize),
}

struct Run<'s, 'v> {
    s: &'s Schemas,
    /// Resources entered, outermost first (the dynamic scope).
    scope: Vec<usize>,
    path: Vec<Step<'v>>,
    errors: Vec<Error>,
    /// Schemas entered and not yet left.
    nesting: u32,
}

pub(crate) fn validate(s: &Schemas, v: &Value, n: usize) -> Result<(), Vec<Error>> {
    let mut run = Run {
        s,
        scope: Vec::new(),
        path: Vec::new(),
        errors: Vec::new(),
        nesting: 0,
    };
    let (ok, _) = run.eval(n, v, true, 0);
    if ok {
        Ok(())
    } else {
        if run.errors.is_empty() {
            // Every failure records one; keep the contract if one did not.
            run.errors.push(Error {
                kind: Kind::Keyword("schema"),
                instance: Vec::new(),
            });
        }
        Err(run.errors)
    }
}

pub(crate) fn is_valid(s: &Schemas, v: &Value, n: usize) -> bool {
    let mut run = Run {
        s,
        scope: Vec::new(),
        path: Vec::new(),
        errors: Vec::new(),
        nesting: 0,
    };
    run.eval(n, v, false, 0).0
}

#[derive(Clone, Copy)]
enum Num {
    I(i64),
    U(u64),
    F(f64),
}

fn num(n: &Number) -> Num {
    if let Some(i) = n.as_i64() {
        Num::I(i)
    } else if let Some(u) = n.as_u64() {
        Num::U(u)
    } else {
        Num::F(n.as_f64().unwrap_or(f64::NAN))
    }
}

fn as_f64(n: Num) -> f64 {
    match n {
        Num::I(i) => i as f64,
        Num::U(u) => u as f64,
        Num::F(f) => f,
    }
}

fn compare(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
        (Num::U(x), Num::U(y)) => Some(x.cmp(&y)),
        (Num::I(x), Num::U(y)) => Some(if x < 0 {
            Ordering::Less
        } else {
            (x as u64).cmp(&y)
        }),
        (Num::U(x), Num::I(y)) => Some(if y < 0 {
            Ordering::Greater
        } else {
            x.cmp(&(y as u64))
        }),
        _ => as_f64(a).partial_cmp(&as_f64(b)),
    }
}

fn multiple_of(v: Num, m: Num) -> bool {
    let int = |n: Num| match n {
        Num::I(i) => Some(i128::from(i)),
        Num::U(u) => Some(i128::from(u)),
        Num::F(_) => None,
    };
    if let (Some(a), Some(b)) = (int(v), int(m)) {
        return b != 0 && a % b == 0;
    }
    let (v, m) = (as_f64(v), as_f64(m));
    let q = v / m;
    if q.is_finite() {
        (q - q.round()).abs() < 1e-9
    } else {
        // The quotient overflows (1e308 / 0.5): the remainder is exact in floating point.
        v.is_finite() && v % m == 0.0
    }
}

fn is_integer(n: &Number) -> bool {
    n.is_i64()
        || n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

/// JSON equality: numbers by value (`1` equals `1.0`), objects whatever their member order.
pub(crate) fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare(num(x), num(y)) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| equal(p, q)))
        }
        _ => a == b,
    }
}

fn type_bits(v: &Value) -> u8 {
    match v {
        Value::Null => NULL,
        Value::Bool(_) => BOOLEAN,
        Value::Object(_) => OBJECT,
        Value::Array(_) => ARRAY,
        Value::String(_) => STRING,
        Value::Number(n) => {
            if is_integer(n) {
                NUMBER | INTEGER
            } else {
                NUMBER
            }
        }
    }
}

impl<'s, 'v> Run<'s, 'v> {
    fn fail(&mut self, kind: Kind) {
        if self.errors.len() < MAX_ERRORS {
            let instance = self
                .path
                .iter()
                .map(|s| match s {
                    Step::Prop(p) => Token::Prop((*p).to_string()),
                    Step::Item(i) => Token::Item(*i),
                })
                .collect();
            self.errors.push(Error { kind, instance });
        }
    }

    fn node(&self, n: usize) -> &'s Node {
        static EMPTY: Node = Node {
            resource: 0,
            boolean: Some(false),
            types: 0,
            enumeration: None,
            constant: None,
            reference: None,
            dynamic_reference: None,
            number: None,
            string: None,
            array: None,
            object: None,
            format: None,
            all_of: Vec::new(),
            any_of: Vec::new(),
            one_of: Vec::new(),
            not: None,
            condition: None,
            unevaluated_properties: None,
            unevaluated_items: None,
        };
        self.s.nodes.get(n).unwrap_or(&EMPTY)
    }

    /// Evaluates a child instance (a member or an item) against `n`.
    fn child(&mut self, n: usize, v: &'v Value, step: Step<'v>, collect: bool) -> bool {
        self.path.push(step);
        let (ok, _) = self.eval(n, v, collect, 0);
        self.path.pop();
        ok
    }

    /// Whether `v` is valid against `n`, with nothing recorded; for values that are not part of
    /// the instance (`propertyNames`).
    fn detached(&self, n: usize, v: &Value) -> bool {
        let mut run = Run {
            s: self.s,
            scope: self.scope.clone(),
            path: Vec::new(),
            errors: Vec::new(),
            nesting: self.nesting,
        };
        run.eval(n, v, false, 0).0
    }

    /// Validates `v` against node `n`. With `collect`, every failure is recorded and the walk
    /// goes on; without, it returns at the first. Returns validity and what was evaluated.
    fn eval(&mut self, n: usize, v: &'v Value, collect: bool, hops: u32) -> (bool, Seen) {
        let node = self.node(n);
        let mut seen = Seen::default();
        if let Some(b) = node.boolean {
            if !b && collect {
                self.fail(Kind::False);
            }
            return (b, seen);
        }
        if hops > MAX_HOPS {
            if collect {
                self.fail(Kind::Cycle);
            }
            return (false, seen);
        }
        if self.nesting >= MAX_NESTING {
            if collect {
                self.fail(Kind::TooDeep);
            }
            return (false, seen);
        }
        let entered = self.scope.last() != Some(&node.resource);
        if entered {
            self.scope.push(node.resource);
        }
        self.nesting += 1;
        let ok = self.keywords(node, v, collect, hops, &mut seen);
        self.nesting -= 1;
        if entered {
            self.scope.pop();
        }
        (ok, seen)
    }

    fn keywords(
        &mut self,
        node: &'s Node,
        v: &'v Value,
        collect: bool,
        hops: u32,
        seen: &mut Seen,
    ) -> bool {
        let mut ok = true;
        // Records a failure of this node's own keyword, or returns at once when not collecting.
        macro_rules! fail {
            ($kind:expr) => {{
                ok = false;
                if !collect {
                    return false;
                }
                self.fail($kind);
            }};
        }
        // A subschema failed (it recorded its own failures).
        macro_rules! failed {
            () => {{
                ok = false;
                if !collect {
                    return false;
                }
            }};
        }
        let annotate = self.s.uses_unevaluated && matches!(v, Value::Object(_) | Value::Array(_));

        if node.types != 0 && node.types & type_bits(v) == 0 {
            fail!(Kind::Keyword("type"));
        }
        if let Some(list) = &node.enumeration {
            if !list.iter().any(|e| equal(e, v)) {
                fail!(Kind::Keyword("enum"));
            }
        }
        if let Some(c) = &node.constant {
            if !equal(c, v) {
                fail!(Kind::Keyword("const"));
            }
        }
        if let Some(r) = node.reference {
            let (o, s) = self.eval(r, v, collect, hops + 1);
            seen.merge(s);
            if !o {
                failed!();
            }
        }
        if let Some((target, anchor)) = &node.dynamic_reference {
            let mut t = *target;
            if let Some(name) = anchor {
                let found = self.scope.iter().find_map(|r| {
                    self.s
                        .dynamic
                        .get(*r)
                        .and_then(|list| list.iter().find(|(x, _)| x == name))
                        .map(|(_, n)| *n)
                });
                if let Some(f) = found {
                    t = f;
                }
            }
            let (o, s) = self.eval(t, v, collect, hops + 1);
            seen.merge(s);
            if !o {
                failed!();
            }
        }
        if let Some(f) = &node.format {
            let good = match (f, v) {
                (Format::Custom(check), _) => check(v),
                (Format::Builtin(name), Value::String(s)) => {
                    crate::format::check(name, s).unwrap_or(true)
                }
                (Format::Regex, Value::String(s)) => shieldwall_regex::check_syntax(s).is_ok(),
                _ => true,
            };
            if !good {
                fail!(Kind::Keyword("format"));
            }
        }
        match v {
            Value::Number(x) => {
                if let Some(c) = &node.number {
                    let x = num(x);
                    let cmp = |b: &Option<Number>| b.as_ref().and_then(|b| compare(x, num(b)));
                    if cmp(&c.minimum).is_some_and(|o| o == Ordering::Less) {
                        fail!(Kind::Keyword("minimum"));
                    }
                    if cmp(&c.maximum).is_some_and(|o| o == Ordering::Greater) {
                        fail!(Kind::Keyword("maximum"));
                    }
                    if cmp(&c.exclusive_minimum).is_some_and(|o| o != Ordering::Greater) {
                        fail!(Kind::Keyword("exclusiveMinimum"));
                    }
                    if cmp(&c.exclusive_maximum).is_some_and(|o| o != Ordering::Less) {
                        fail!(Kind::Keyword("exclusiveMaximum"));
                    }
                    if let Some(m) = &c.multiple_of {
                        if !multiple_of(x, num(m)) {
                            fail!(Kind::Keyword("multipleOf"));
                        }
                    }
                }
            }
            Value::String(s) => {
                if let Some(c) = &node.string {
                    if c.min_length.is_some() || c.max_length.is_some() {
                        let len = s.chars().count();
                        if c.min_length.is_some_and(|m| len < m) {
                            fail!(Kind::Keyword("minLength"));
                        }
                        if c.max_length.is_some_and(|m| len > m) {
                            fail!(Kind::Keyword("maxLength"));
                        }
                    }
                    if let Some(re) = &c.pattern {
                        if !re.is_match(s) {
                            fail!(Kind::Keyword("pattern"));
                        }
                    }
                }
            }
            Value::Array(items) => {
                if let Some(c) = &node.array {
                    if c.min_items.is_some_and(|m| items.len() < m) {
                        fail!(Kind::Keyword("minItems"));
                    }
                    if c.max_items.is_some_and(|m| items.len() > m) {
                        fail!(Kind::Keyword("maxItems"));
                    }
                    if c.unique_items && !unique(items) {
                        fail!(Kind::Keyword("uniqueItems"));
                    }
                    for (i, (s, item)) in c.prefix_items.iter().zip(items).enumerate() {
                        if !self.child(*s, item, Step::Item(i), collect) {
                            failed!();
                        }
                    }
                    seen.items = seen.items.max(c.prefix_items.len().min(items.len()));
                    if let Some(s) = c.items {
                        let start = c.prefix_items.len();
                        let refuses = self.node(s).boolean == Some(false);
                        for (i, item) in items.iter().enumerate().skip(start) {
                            if refuses {
                                self.path.push(Step::Item(i));
                                fail!(Kind::ExtraItem);
                                self.path.pop();
                            } else if !self.child(s, item, Step::Item(i), collect) {
                                failed!();
                            }
                        }
                        seen.items = items.len();
                    }
                    if let Some(s) = c.contains {
                        let mut found = 0usize;
                        for (i, item) in items.iter().enumerate() {
                            self.path.push(Step::Item(i));
                            let (o, _) = self.eval(s, item, false, 0);
                            self.path.pop();
                            if o {
                                found += 1;
                                seen.matched.set(i);
                            }
                        }
                        let min = c.min_contains.unwrap_or(1);
                        if found < min {
                            fail!(Kind::Keyword(if c.min_contains.is_some() {
                                "minContains"
                            } else {
                                "contains"
                            }));
                        }
                        if c.max_contains.is_some_and(|m| found > m) {
                            fail!(Kind::Keyword("maxContains"));
                        }
                    }
                }
            }
            Value::Object(members) => {
                if let Some(c) = &node.object {
                    if c.min_properties.is_some_and(|m| members.len() < m) {
                        fail!(Kind::Keyword("minProperties"));
                    }
                    if c.max_properties.is_some_and(|m| members.len() > m) {
                        fail!(Kind::Keyword("maxProperties"));
                    }
                    if c.required.iter().any(|r| !members.contains_key(r)) {
                        fail!(Kind::Keyword("required"));
                    }
                    for (name, needs) in &c.dependent_required {
                        if members.contains_key(name)
                            && needs.iter().any(|r| !members.contains_key(r))
                        {
                            fail!(Kind::Keyword("dependentRequired"));
                        }
                    }
                    if let Some(p) = c.property_names {
                        for name in members.keys() {
                            if !self.detached(p, &Value::String(name.clone())) {
                                fail!(Kind::Keyword("propertyNames"));
                                break;
                            }
                        }
                    }
                    if !self.members(c, members, collect, seen) {
                        failed!();
                    }
                    for (name, s) in &c.dependent_schemas {
                        if members.contains_key(name) {
                            let (o, e) = self.eval(*s, v, collect, hops + 1);
                            seen.merge(e);
                            if !o {
                                failed!();
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        for s in &node.all_of {
            let (o, e) = self.eval(*s, v, collect, hops + 1);
            seen.merge(e);
            if !o {
                failed!();
            }
        }
        if !node.any_of.is_empty() {
            let mut any = false;
            for s in &node.any_of {
                let (o, e) = self.eval(*s, v, false, hops + 1);
                if o {
                    any = true;
                    seen.merge(e);
                    if !annotate {
                        break;
                    }
                }
            }
            if !any {
                fail!(Kind::Keyword("anyOf"));
            }
        }
        if !node.one_of.is_empty() {
            let mut valid = 0usize;
            for s in &node.one_of {
                let (o, e) = self.eval(*s, v, false, hops + 1);
                if o {
                    valid += 1;
                    seen.merge(e);
                    if valid > 1 {
                        break;
                    }
                }
            }
            if valid != 1 {
                fail!(Kind::Keyword("oneOf"));
            }
        }
        if let Some(s) = node.not {
            if self.eval(s, v, false, hops + 1).0 {
                fail!(Kind::Keyword("not"));
            }
        }
        if let Some((i, then, otherwise)) = node.condition {
            let (o, e) = self.eval(i, v, false, hops + 1);
            let branch = if o {
                seen.merge(e);
                then
            } else {
                otherwise
            };
            if let Some(b) = branch {
                let (o, e) = self.eval(b, v, collect, hops + 1);
                seen.merge(e);
                if !o {
                    failed!();
                }
            }
        }
        if let (Some(u), Value::Object(members)) = (node.unevaluated_properties, v) {
            let refuses = self.node(u).boolean == Some(false);
            for (i, (name, m)) in members.iter().enumerate() {
                if seen.props.get(i) {
                    continue;
                }
                if refuses {
                    ok = false;
                    if !collect {
                        return false;
                    }
                    self.path.push(Step::Prop(name));
                    self.fail(Kind::UnknownMember);
                    self.path.pop();
                } else if !self.child(u, m, Step::Prop(name), collect) {
                    failed!();
                }
                seen.props.set(i);
            }
        }
        if let (Some(u), Value::Array(items)) = (node.unevaluated_items, v) {
            let refuses = self.node(u).boolean == Some(false);
            for (i, item) in items.iter().enumerate() {
                if i < seen.items || seen.matched.get(i) {
                    continue;
                }
                if refuses {
                    ok = false;
                    if !collect {
                        return false;
                    }
                    self.path.push(Step::Item(i));
                    self.fail(Kind::ExtraItem);
                    self.path.pop();
                } else if !self.child(u, item, Step::Item(i), collect) {
                    failed!();
                }
            }
            seen.items = items.len();
        }
        let _ = annotate;
        ok
    }

    /// `properties`, `patternProperties` and `additionalProperties` over the members.
    fn members(
        &mut self,
        c: &'s crate::compile::ObjectChecks,
        members: &'v Map<String, Value>,
        collect: bool,
        seen: &mut Seen,
    ) -> bool {
        if c.properties.is_empty()
            && c.pattern_properties.is_empty()
            && c.additional_properties.is_none()
        {
            return true;
        }
        let mut ok = true;
        let refuses = c
            .additional_properties
            .is_some_and(|a| self.node(a).boolean == Some(false));
        for (i, (name, m)) in members.iter().enumerate() {
            let mut matched = false;
            if let Ok(k) = c.properties.binary_search_by(|(p, _)| p.as_str().cmp(name)) {
                matched = true;
                if let Some((_, s)) = c.properties.get(k) {
                    if !self.child(*s, m, Step::Prop(name), collect) {
                        ok = false;
                        if !collect {
                            return false;
                        }
                    }
                }
            }
            for (re, s) in &c.pattern_properties {
                if re.is_match(name) {
                    matched = true;
                    if !self.child(*s, m, Step::Prop(name), collect) {
                        ok = false;
                        if !collect {
                            return false;
                        }
                    }
                }
            }
            if !matched {
                if let Some(a) = c.additional_properties {
                    matched = true;
                    if refuses {
                        ok = false;
                        if !collect {
                            return false;
                        }
                        self.path.push(Step::Prop(name));
                        self.fail(Kind::UnknownMember);
                        self.path.pop();
                    } else if !self.child(a, m, Step::Prop(name), collect) {
                        ok = false;
                        if !collect {
                            return false;
                        }
                    }
                }
            }
            if matched {
                seen.props.set(i);
            }
        }
        ok
    }
}

/// Whether no two items are equal (JSON equality).
fn unique(items: &[Value]) -> bool {
    for (i, a) in items.iter().enumerate() {
        if items.iter().skip(i + 1).any(|b| equal(a, b)) {
            return false;
        }
    }
    true
}
