//! Injection checks: SQL and XSS with libinjection's algorithms (the `libinjectionrs` port) on
//! the strings `where` chooses, and NoSQL operator names (`$ne`, `$where`, dotted paths) as
//! object keys the schema does not declare. Nothing is rewritten: a request passes or is
//! refused.
//!
//! `where: free_text` reads the schema beside the body: a string is free text unless every
//! schema that may apply to it constrains it by `enum`, `const`, `format` or `pattern`, or says
//! it is not a string. Where the schema cannot tell (no document, a member matched only by
//! `patternProperties`, a reference loop) the string is treated as free text: checked.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::config::{Injection, Where};
use crate::schema::{at, escape};

/// Which check found something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Sql,
    Xss,
    NoSql,
}

impl Check {
    pub fn rule(self) -> &'static str {
        match self {
            Check::Sql => "sqli",
            Check::Xss => "xss",
            Check::NoSql => "nosql",
        }
    }
}

/// A finding: the check and where (a JSON pointer in the body; `*` for undeclared names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub check: Check,
    pub pointer: String,
}

/// SQL then XSS on one string, as configured.
pub fn scan_text(text: &str, inj: &Injection) -> Option<Check> {
    if inj.sql && libinjectionrs::detect_sqli(text.as_bytes()).is_injection() {
        return Some(Check::Sql);
    }
    if inj.xss && may_be_markup(text) && libinjectionrs::detect_xss(text.as_bytes()).is_injection()
    {
        return Some(Check::Xss);
    }
    None
}

/// Whether libinjection's XSS check can flag `text` at all. It flags a doctype, a tag, a comment
/// (each begins at `<`), or an attribute value whose attribute name is dangerous (a value follows
/// the name after `=`); it reads the text in five contexts (HTML data, and inside an unquoted,
/// single-, double- or back-quoted attribute value), and in none of them does a token of those
/// kinds start without a `<` or a `=` in the text. Text with neither, most of ordinary prose, is
/// passed without running the five tokenizers (`xss_needs_lt_or_eq` checks this against the
/// detector on generated text).
fn may_be_markup(text: &str) -> bool {
    text.bytes().any(|b| b == b'<' || b == b'=')
}

/// A key that a document store reads as an operator or a path.
pub fn nosql_key(key: &str) -> bool {
    key.starts_with('$') || key.contains('.')
}

/// A query parameter name in the bracket syntax some frameworks turn into objects (`a[$ne]`).
pub fn nosql_query_name(name: &str) -> bool {
    name.starts_with('$') || name.contains("[$")
}

/// How deep the schema walk follows references and compositions before it stops knowing.
const MAX_SCHEMA_HOPS: usize = 24;

/// The schemas (pointers into the document) that may apply to one value.
#[derive(Clone, Debug)]
struct Applicable {
    /// `None`: unknown (no schema, or one the walk cannot follow).
    ptrs: Option<Vec<String>>,
}

impl Applicable {
    fn unknown() -> Applicable {
        Applicable { ptrs: None }
    }
}

/// The schema objects a pointer stands for, with `$ref` and `allOf` followed (each applies).
fn expand<'a>(
    doc: &'a Value,
    ptr: &str,
    hops: usize,
    out: &mut Vec<&'a Map<String, Value>>,
) -> bool {
    if hops > MAX_SCHEMA_HOPS {
        return false;
    }
    let Some(v) = at(doc, ptr) else { return false };
    let Value::Object(obj) = v else {
        return true; // a boolean schema says nothing about strings
    };
    out.push(obj);
    if let Some(Value::String(r)) = obj.get("$ref") {
        match r.strip_prefix('#') {
            Some(t) if t.is_empty() || t.starts_with('/') => {
                if !expand(doc, t, hops + 1, out) {
                    return false;
                }
            }
            _ => return false,
        }
    }
    if let Some(Value::Array(list)) = obj.get("allOf") {
        for i in 0..list.len() {
            if !expand(doc, &format!("{ptr}/allOf/{i}"), hops + 1, out) {
                return false;
            }
        }
    }
    true
}

/// The pointer of each schema object found by `expand` (kept in step with it).
fn expand_ptrs(doc: &Value, ptr: &str, hops: usize, out: &mut Vec<String>) -> bool {
    if hops > MAX_SCHEMA_HOPS {
        return false;
    }
    let Some(v) = at(doc, ptr) else { return false };
    let Value::Object(obj) = v else { return true };
    out.push(ptr.to_string());
    if let Some(Value::String(r)) = obj.get("$ref") {
        match r.strip_prefix('#') {
            Some(t) if t.is_empty() || t.starts_with('/') => {
                if !expand_ptrs(doc, t, hops + 1, out) {
                    return false;
                }
            }
            _ => return false,
        }
    }
    if let Some(Value::Array(list)) = obj.get("allOf") {
        for i in 0..list.len() {
            if !expand_ptrs(doc, &format!("{ptr}/allOf/{i}"), hops + 1, out) {
                return false;
            }
        }
    }
    true
}

/// What a schema says of the strings under it: whether it constrains them (`enum`, `const`,
/// `pattern`, `format`, a non-string type; for alternatives, all of them), and the formats it
/// names directly.
#[derive(Clone, Debug, Default)]
struct Facts {
    constrained: bool,
    formats: Vec<String>,
}

fn facts(doc: &Value, ptr: &str, hops: usize) -> Facts {
    if hops > MAX_SCHEMA_HOPS {
        return Facts::default();
    }
    let mut objs = Vec::new();
    if !expand(doc, ptr, hops, &mut objs) {
        return Facts::default();
    }
    let mut out = Facts::default();
    for o in &objs {
        if let Some(Value::String(f)) = o.get("format") {
            out.formats.push(f.clone());
            out.constrained = true;
        }
        if o.contains_key("enum") || o.contains_key("const") || o.contains_key("pattern") {
            out.constrained = true;
        }
        let not_string = match o.get("type") {
            Some(Value::String(t)) => t != "string",
            Some(Value::Array(ts)) => !ts.iter().any(|t| t == "string"),
            _ => false,
        };
        out.constrained |= not_string;
    }
    if out.constrained {
        return out;
    }
    // Alternatives: constrained only if every alternative is.
    let mut ptrs = Vec::new();
    if !expand_ptrs(doc, ptr, hops, &mut ptrs) {
        return out;
    }
    let mut any_alt = false;
    for p in &ptrs {
        let Some(Value::Object(o)) = at(doc, p) else {
            continue;
        };
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(list)) = o.get(key) {
                any_alt = true;
                for i in 0..list.len() {
                    if !facts(doc, &format!("{p}/{key}/{i}"), hops + 1).constrained {
                        return out;
                    }
                }
            }
        }
    }
    out.constrained = any_alt;
    out
}

/// The schema walk's answers, kept per compiled document (they depend on the document only).
/// Keys are schema locations and member names the document declares, so the cache is bounded by
/// the document, whatever the bodies hold.
///
/// The sets of schemas that may apply to a value are interned: a body's walk goes from set to set
/// by number, and reads what a set says of strings without building a key or copying a pointer.
#[derive(Debug, Default)]
pub struct WalkCache {
    facts: RefCell<HashMap<String, Facts>>,
    sets: RefCell<Vec<SchemaSet>>,
    ids: RefCell<HashMap<Vec<String>, SetId>>,
    /// By set number: member name (a declared one, or [`UNDECLARED`]) → the member's set. A short
    /// list read by comparing names: a schema declares a handful of members, and a hit then
    /// costs no hashing.
    members: RefCell<Vec<Vec<(String, SetId)>>>,
    /// By set number: item index (up to 64) → the item's set.
    items: RefCell<Vec<Vec<(usize, SetId)>>>,
}

/// An interned set of schemas (its index in `WalkCache::sets`); [`UNKNOWN`] when the walk cannot
/// tell which schemas apply.
type SetId = u32;
const UNKNOWN: SetId = SetId::MAX;

/// A member name the document does not declare: it is in no `properties`, one entry serves all.
const UNDECLARED: &str = "\u{0}";

/// Schemas that may apply to one value, and what they say of a string there.
#[derive(Debug)]
struct SchemaSet {
    ptrs: Vec<String>,
    /// Every schema of the set constrains strings (see [`Facts`]).
    all_constrained: bool,
    /// The formats any of them names.
    formats: Vec<String>,
}

/// Entries per map at most (a safety net: the keys are bounded by the document anyway). Past it,
/// a new set is unknown: its strings are checked, which is the safe side.
const MAX_CACHED: usize = 16_384;

impl WalkCache {
    fn facts(&self, doc: &Value, ptr: &str) -> Facts {
        if let Some(f) = self
            .facts
            .try_borrow()
            .ok()
            .and_then(|m| m.get(ptr).cloned())
        {
            return f;
        }
        let f = facts(doc, ptr, 0);
        if let Ok(mut m) = self.facts.try_borrow_mut() {
            if m.len() < MAX_CACHED {
                m.insert(ptr.to_string(), f.clone());
            }
        }
        f
    }

    /// The number of a set of schemas, interning it the first time.
    fn intern(&self, doc: &Value, applicable: Applicable) -> SetId {
        let Some(ptrs) = applicable.ptrs else {
            return UNKNOWN;
        };
        if let Some(id) = self
            .ids
            .try_borrow()
            .ok()
            .and_then(|m| m.get(&ptrs).copied())
        {
            return id;
        }
        let mut all_constrained = true;
        let mut formats: Vec<String> = Vec::new();
        for p in &ptrs {
            let f = self.facts(doc, p);
            all_constrained &= f.constrained;
            for x in f.formats {
                if !formats.contains(&x) {
                    formats.push(x);
                }
            }
        }
        let (Ok(mut sets), Ok(mut ids)) = (self.sets.try_borrow_mut(), self.ids.try_borrow_mut())
        else {
            return UNKNOWN;
        };
        let Some(id) = SetId::try_from(sets.len())
            .ok()
            .filter(|id| *id != UNKNOWN && sets.len() < MAX_CACHED)
        else {
            return UNKNOWN;
        };
        ids.insert(ptrs.clone(), id);
        sets.push(SchemaSet {
            ptrs,
            all_constrained,
            formats,
        });
        id
    }

    /// The schemas of a set, as the slow path reads them.
    fn applicable(&self, id: SetId) -> Applicable {
        Applicable {
            ptrs: self
                .sets
                .try_borrow()
                .ok()
                .and_then(|s| s.get(usize::try_from(id).ok()?).map(|s| s.ptrs.clone())),
        }
    }

    /// Whether the SQL/XSS checks read a string whose schemas are `id`.
    fn reads_string(&self, id: SetId, inj: &Injection) -> bool {
        let Ok(sets) = self.sets.try_borrow() else {
            return true;
        };
        let Some(set) = usize::try_from(id).ok().and_then(|i| sets.get(i)) else {
            return true; // unknown: free text
        };
        let skip = set.formats.iter().any(|x| inj.skip_formats.contains(x));
        !skip && (inj.where_ == Where::AllStrings || !set.all_constrained)
    }

    /// The set of a member (`key`) or an item (`index`) of a value whose set is `parent`.
    fn child(
        &self,
        doc: &Value,
        parent: SetId,
        key: Option<&str>,
        index: usize,
        known: &dyn Fn(&str) -> bool,
    ) -> SetId {
        let Some(at) = usize::try_from(parent).ok().filter(|_| parent != UNKNOWN) else {
            return UNKNOWN;
        };
        let index = index.min(64);
        let member_of = |name: &str| -> Option<SetId> {
            let m = self.members.try_borrow().ok()?;
            m.get(at)?
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, id)| *id)
        };
        let member = match key {
            Some(k) => {
                if let Some(id) = member_of(k) {
                    return id;
                }
                let name = if known(k) { k } else { UNDECLARED };
                if name != k {
                    if let Some(id) = member_of(name) {
                        return id;
                    }
                }
                Some(name)
            }
            None => {
                let cached = self.items.try_borrow().ok().and_then(|c| {
                    c.get(at)?
                        .iter()
                        .find(|(i, _)| *i == index)
                        .map(|(_, id)| *id)
                });
                if let Some(id) = cached {
                    return id;
                }
                None
            }
        };
        let id = self.intern(doc, child(doc, &self.applicable(parent), member, index));
        match member {
            Some(m) => {
                if let Ok(mut c) = self.members.try_borrow_mut() {
                    if c.len() <= at {
                        c.resize_with(at + 1, Vec::new);
                    }
                    if let Some(list) = c.get_mut(at).filter(|l| l.len() < MAX_CACHED) {
                        list.push((m.to_string(), id));
                    }
                }
            }
            None => {
                if let Ok(mut c) = self.items.try_borrow_mut() {
                    if c.len() <= at {
                        c.resize_with(at + 1, Vec::new);
                    }
                    if let Some(list) = c.get_mut(at) {
                        list.push((index, id));
                    }
                }
            }
        }
        id
    }
}

/// The schemas that may apply to a member (`key`) or an item (`index`) of a value.
fn child(doc: &Value, parent: &Applicable, key: Option<&str>, index: usize) -> Applicable {
    let Some(ptrs) = &parent.ptrs else {
        return Applicable::unknown();
    };
    let mut out = Vec::new();
    let mut all = Vec::new();
    for p in ptrs {
        if !expand_ptrs(doc, p, 0, &mut all) {
            return Applicable::unknown();
        }
    }
    // Alternatives' children too (a superset: checking more is the safe side).
    let mut i = 0;
    while let Some(p) = all.get(i).cloned() {
        i += 1;
        if all.len() > 256 {
            return Applicable::unknown();
        }
        if let Some(Value::Object(o)) = at(doc, &p) {
            for k in ["anyOf", "oneOf"] {
                if let Some(Value::Array(list)) = o.get(k) {
                    for j in 0..list.len() {
                        if !expand_ptrs(doc, &format!("{p}/{k}/{j}"), 0, &mut all) {
                            return Applicable::unknown();
                        }
                    }
                }
            }
        }
    }
    for p in &all {
        let Some(Value::Object(o)) = at(doc, p) else {
            continue;
        };
        match key {
            Some(k) => {
                if let Some(Value::Object(props)) = o.get("properties") {
                    if props.contains_key(k) {
                        out.push(format!("{p}/properties/{}", escape(k)));
                        continue;
                    }
                }
                if o.contains_key("patternProperties") {
                    return Applicable::unknown();
                }
                if let Some(ap) = o.get("additionalProperties") {
                    if ap.is_object() {
                        out.push(format!("{p}/additionalProperties"));
                    }
                }
            }
            None => {
                if let Some(Value::Array(prefix)) = o.get("prefixItems") {
                    if index < prefix.len() {
                        out.push(format!("{p}/prefixItems/{index}"));
                        continue;
                    }
                }
                if let Some(items) = o.get("items") {
                    if items.is_object() {
                        out.push(format!("{p}/items"));
                    }
                }
            }
        }
    }
    if out.is_empty() {
        Applicable::unknown()
    } else {
        Applicable { ptrs: Some(out) }
    }
}

/// Whether a member name is declared by a schema that may apply to its object.
fn declared(doc: &Value, parent: &Applicable, key: &str) -> bool {
    let Some(ptrs) = &parent.ptrs else {
        return false;
    };
    let mut all = Vec::new();
    for p in ptrs {
        if !expand_ptrs(doc, p, 0, &mut all) {
            return false;
        }
    }
    all.iter().any(|p| {
        at(doc, &format!("{p}/properties"))
            .and_then(Value::as_object)
            .is_some_and(|props| props.contains_key(key))
    })
}

/// Decides for one string whether SQL/XSS checks read it.
pub fn reads(
    doc: Option<&Value>,
    cache: &WalkCache,
    schema_ptr: Option<&str>,
    inj: &Injection,
) -> bool {
    match inj.where_ {
        Where::Off => false,
        Where::AllStrings | Where::FreeText => {
            let (Some(doc), Some(ptr)) = (doc, schema_ptr) else {
                return true;
            };
            let f = cache.facts(doc, ptr);
            if f.formats.iter().any(|x| inj.skip_formats.contains(x)) {
                return false;
            }
            inj.where_ == Where::AllStrings || !f.constrained
        }
    }
}

/// Scans a parsed body. `schema` is the pointer of the body's schema in `doc`, when known.
pub fn scan_body(
    body: &Value,
    doc: Option<&Value>,
    cache: &WalkCache,
    schema: Option<&str>,
    inj: &Injection,
    known: &dyn Fn(&str) -> bool,
) -> Option<Finding> {
    let start = match (doc, schema) {
        (Some(d), Some(p)) => cache.intern(
            d,
            Applicable {
                ptrs: Some(vec![p.to_string()]),
            },
        ),
        _ => UNKNOWN,
    };
    let w = Walker {
        doc,
        cache,
        inj,
        known,
    };
    w.walk(body, start)
}

/// Puts a member's token in front of a finding's pointer (built on the way back up, so a body
/// without findings builds none): the name when it is an index or one the document declares,
/// else `*`.
fn prepend_token(finding: &mut Finding, t: &str, known: &dyn Fn(&str) -> bool) {
    let token = if t.bytes().all(|b| b.is_ascii_digit()) || known(t) {
        format!("/{}", escape(t))
    } else {
        "/*".to_string()
    };
    finding.pointer.insert_str(0, &token);
}

struct Walker<'a> {
    doc: Option<&'a Value>,
    cache: &'a WalkCache,
    inj: &'a Injection,
    known: &'a dyn Fn(&str) -> bool,
}

impl Walker<'_> {
    fn sub(&self, here: SetId, key: Option<&str>, index: usize) -> SetId {
        match self.doc {
            Some(d) => self.cache.child(d, here, key, index, self.known),
            None => UNKNOWN,
        }
    }

    /// The first finding in `v`, its pointer relative to `v`.
    fn walk(&self, v: &Value, here: SetId) -> Option<Finding> {
        let inj = self.inj;
        match v {
            Value::String(s) => {
                if inj.where_ == Where::Off || !(inj.sql || inj.xss) {
                    return None;
                }
                // Skipped by a format under any applicable schema, or constrained by all.
                let read = self.doc.is_none() || self.cache.reads_string(here, inj);
                if read {
                    if let Some(check) = scan_text(s, inj) {
                        return Some(Finding {
                            check,
                            pointer: String::new(),
                        });
                    }
                }
                None
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let sub = self.sub(here, None, i);
                    if let Some(mut found) = self.walk(item, sub) {
                        found.pointer.insert_str(0, &format!("/{i}"));
                        return Some(found);
                    }
                }
                None
            }
            Value::Object(map) => {
                for (k, item) in map {
                    if inj.nosql
                        && nosql_key(k)
                        && !self
                            .doc
                            .is_some_and(|d| declared(d, &self.cache.applicable(here), k))
                    {
                        return Some(Finding {
                            check: Check::NoSql,
                            pointer: String::new(),
                        });
                    }
                    let sub = self.sub(here, Some(k), 0);
                    if let Some(mut found) = self.walk(item, sub) {
                        prepend_token(&mut found, k, self.known);
                        return Some(found);
                    }
                }
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inj(where_: Where) -> Injection {
        Injection {
            sql: true,
            nosql: true,
            xss: true,
            where_,
            skip_formats: vec!["password".into()],
        }
    }

    #[test]
    fn libinjection_samples() {
        let i = inj(Where::AllStrings);
        for s in [
            "1' OR '1'='1",
            "1 UNION SELECT username, password FROM users--",
            "admin'--",
            "1; DROP TABLE orders",
        ] {
            assert_eq!(scan_text(s, &i), Some(Check::Sql), "{s}");
        }
        for s in [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "\"><script>alert(document.cookie)</script>",
        ] {
            assert_eq!(scan_text(s, &i), Some(Check::Xss), "{s}");
        }
        for s in [
            "O'Brien",
            "Please leave the parcel at the back door.",
            "Zoë Müller",
            "12 Rue de l'Église, 75004 Paris",
        ] {
            assert_eq!(scan_text(s, &i), None, "{s}");
        }
    }

    /// The XSS pre-check skips only what the detector would pass: text without `<` and `=` is
    /// never flagged, whatever else it holds (quotes of every kind, `>`, `/`, event-handler and
    /// style attribute names, `javascript:` URLs, entities, NUL and non-ASCII bytes).
    #[test]
    fn xss_needs_lt_or_eq() {
        let pieces: &[&str] = &[
            "a",
            "x",
            " ",
            "\t",
            "\n",
            "\"",
            "'",
            "`",
            ">",
            "/",
            "!",
            "?",
            "-",
            "--",
            "&",
            "#",
            ";",
            ":",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            "\\",
            "onerror",
            "onload",
            "ONMOUSEOVER",
            "style",
            "src",
            "href",
            "xlink:href",
            "formaction",
            "javascript:",
            "vbscript:",
            "data:",
            "alert(1)",
            "script",
            "img",
            "svg",
            "iframe",
            "import",
            "entity",
            "xml",
            "[if",
            "DOCTYPE",
            "&#x3c;",
            "&lt;",
            "\u{0}",
            "é",
            "\u{ff1c}",
            "1",
            "%3c",
        ];
        // A deterministic generator (xorshift), so a failure names a reproducible input.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for _ in 0..20_000 {
            let len = 1 + next(12);
            let text: String = (0..len).map(|_| pieces[next(pieces.len())]).collect();
            assert!(!may_be_markup(&text));
            assert!(
                !libinjectionrs::detect_xss(text.as_bytes()).is_injection(),
                "flagged without < or =: {text:?}"
            );
        }
        // With them, the detector runs and the usual vectors are caught.
        let i = inj(Where::AllStrings);
        for s in [
            "\" onmouseover=alert(1) x=\"",
            "' style=x:expression(1) '",
            "<svg/onload=alert(1)>",
        ] {
            assert!(may_be_markup(s));
            assert_eq!(scan_text(s, &i), Some(Check::Xss), "{s}");
        }
    }

    #[test]
    fn free_text_follows_the_schema() {
        let doc = json!({"s": {"type": "object", "properties": {
            "comment": {"type": "string"},
            "status": {"type": "string", "enum": ["1' OR '1'='1"]},
            "password": {"type": "string", "format": "password"},
            "tags": {"type": "array", "items": {"$ref": "#/tag"}},
            "either": {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "string"}]}}},
            "tag": {"type": "string", "pattern": "^.*$"}});
        let known = |k: &str| ["comment", "status", "password", "tags", "either"].contains(&k);
        let free = inj(Where::FreeText);
        let cache = WalkCache::default();
        let scan = |body: Value, i: &Injection| {
            scan_body(&body, Some(&doc), &cache, Some("/s"), i, &known)
        };
        let f = scan(json!({"comment": "1' OR '1'='1"}), &free).unwrap();
        assert_eq!((f.check, f.pointer.as_str()), (Check::Sql, "/comment"));
        assert_eq!(scan(json!({"status": "1' OR '1'='1"}), &free), None);
        assert_eq!(
            scan(json!({"tags": ["<script>alert(1)</script>"]}), &free),
            None
        );
        assert_eq!(
            scan(
                json!({"tags": ["<script>alert(1)</script>"]}),
                &inj(Where::AllStrings)
            )
            .map(|f| f.pointer),
            Some("/tags/0".into())
        );
        assert_eq!(
            scan(json!({"password": "1' OR '1'='1"}), &inj(Where::AllStrings)),
            None
        );
        assert!(scan(json!({"either": "<script>alert(1)</script>"}), &free).is_some());
        assert_eq!(
            scan(json!({"comment": "1' OR '1'='1"}), &inj(Where::Off)),
            None
        );
        // An undeclared member: checked, and its name is not printed.
        let f = scan(json!({"<b>": "<script>alert(1)</script>"}), &free).unwrap();
        assert_eq!(f.pointer, "/*");
    }

    #[test]
    fn nosql_operators_where_the_schema_does_not_declare_them() {
        let doc = json!({"s": {"type": "object", "properties": {
            "password": {"type": "string"}, "$meta": {"type": "object"}}}});
        let known = |k: &str| k == "password";
        let i = inj(Where::FreeText);
        let cache = WalkCache::default();
        let f = scan_body(
            &json!({"password": {"$ne": null}}),
            Some(&doc),
            &cache,
            Some("/s"),
            &i,
            &known,
        )
        .unwrap();
        assert_eq!((f.check, f.pointer.as_str()), (Check::NoSql, "/password"));
        assert!(scan_body(&json!({"a.b": 1}), None, &cache, None, &i, &known).is_some());
        assert_eq!(
            scan_body(
                &json!({"$meta": {}}),
                Some(&doc),
                &cache,
                Some("/s"),
                &i,
                &known
            ),
            None
        );
        assert!(nosql_query_name("user[$ne]"));
        assert!(!nosql_query_name("user[name]"));
    }
}
