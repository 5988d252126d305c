//! The proxy-wasm serialisation of header maps: a count, the sizes of every key and value, then
//! the bytes of each, NUL-terminated. Used by the wasm adapter; parsing never panics.

/// Serialises header pairs the way the ABI expects: count, sizes, then NUL-terminated bytes.
pub fn serialize_pairs(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    let mut size = 4 + pairs.len() * 8;
    for (k, v) in pairs {
        size += k.len() + v.len() + 2;
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&u32::try_from(pairs.len()).unwrap_or(0).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&u32::try_from(k.len()).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&u32::try_from(v.len()).unwrap_or(0).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Calls `f` with the byte range (start, end) of each key and value that lies inside `bytes`, in
/// order, stopping at the first that does not.
fn for_each_span(bytes: &[u8], mut f: impl FnMut((usize, usize), (usize, usize))) {
    let word = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_le_bytes(b) as usize)
    };
    let count = word(0).unwrap_or(0);
    let mut data = 4usize.saturating_add(count.saturating_mul(8));
    for i in 0..count {
        let (Some(ks), Some(vs)) = (word(4 + i * 8), word(8 + i * 8)) else {
            return;
        };
        let key = (data, data.saturating_add(ks));
        let value_start = key.1.saturating_add(1);
        let value = (value_start, value_start.saturating_add(vs));
        if key.1 > bytes.len() || value.1 > bytes.len() {
            return;
        }
        data = value.1.saturating_add(1);
        f(key, value);
    }
}

/// Serialised pairs kept as the host wrote them, with where each key and value lies: finding a
/// pair allocates nothing, and removing a name only shortens the index. Malformed input yields
/// the pairs that could be read, never a panic.
pub struct Pairs {
    bytes: Vec<u8>,
    /// Per pair, in order: the (start, end) of its key and of its value in `bytes`.
    spans: Vec<((usize, usize), (usize, usize))>,
}

impl Pairs {
    pub fn parse(bytes: Vec<u8>) -> Pairs {
        let mut spans = Vec::new();
        for_each_span(&bytes, |k, v| spans.push((k, v)));
        Pairs { bytes, spans }
    }

    fn slice(&self, (start, end): (usize, usize)) -> &[u8] {
        self.bytes.get(start..end).unwrap_or_default()
    }

    /// Every pair, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.spans
            .iter()
            .map(|&(k, v)| (self.slice(k), self.slice(v)))
    }

    /// Every pair as text (invalid UTF-8 replaced), in order.
    pub fn to_strings(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    /// The first value of `name` (ASCII case ignored).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Forgets every pair named `name` (ASCII case ignored), as a proxy removes a header.
    pub fn remove(&mut self, name: &str) {
        let bytes = &self.bytes;
        self.spans.retain(|&((start, end), _)| {
            !bytes
                .get(start..end)
                .is_some_and(|k| k.eq_ignore_ascii_case(name.as_bytes()))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pairs: Vec<(&str, &[u8])> =
            vec![(":path", b"/a"), ("x", b""), ("bin", &[0xff, 0x00, 0x7f])];
        let bytes = serialize_pairs(&pairs);
        let back = Pairs::parse(bytes);
        let back: Vec<(&[u8], &[u8])> = back.iter().collect();
        assert_eq!(back.len(), 3);
        assert_eq!(back[0], (&b":path"[..], &b"/a"[..]));
        assert_eq!(back[1], (&b"x"[..], &b""[..]));
        assert_eq!(back[2].1, &[0xff, 0x00, 0x7f][..]);
        assert_eq!(serialize_pairs(&[]), vec![0, 0, 0, 0]);
    }

    #[test]
    fn pairs_find_the_first_value_and_forget_removed_names() {
        let bytes = serialize_pairs(&[
            (":path", b"/a"),
            ("X-Dup", b"1"),
            ("x-dup", b"2"),
            ("empty", b""),
        ]);
        let mut p = Pairs::parse(bytes);
        assert_eq!(p.get(":path"), Some(&b"/a"[..]));
        assert_eq!(p.get("x-dup"), Some(&b"1"[..]));
        assert_eq!(p.get("EMPTY"), Some(&b""[..]));
        assert_eq!(p.get("absent"), None);
        p.remove("X-DUP");
        assert_eq!(p.get("x-dup"), None);
        let left: Vec<_> = p.iter().map(|(k, _)| k.to_vec()).collect();
        assert_eq!(left, vec![b":path".to_vec(), b"empty".to_vec()]);
    }

    #[test]
    fn a_cut_map_yields_a_prefix_of_its_pairs() {
        let full = serialize_pairs(&[(":method", b"GET"), ("a", b"bb"), ("", b""), ("c", b"d")]);
        for cut in 0..=full.len() {
            let part = full.get(..cut).unwrap().to_vec();
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = Pairs::parse(part.clone())
                .iter()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect();
            // What a cut map yields is a prefix of the whole map's pairs, all of them once the
            // last value is in (its NUL may be missing).
            let whole = Pairs::parse(full.clone());
            assert_eq!(
                pairs.len() == 4,
                cut + 1 >= full.len(),
                "cut {cut}: {pairs:?}"
            );
            for (i, (k, v)) in pairs.iter().enumerate() {
                let (wk, wv) = whole.iter().nth(i).unwrap();
                assert_eq!((k.as_slice(), v.as_slice()), (wk, wv), "cut {cut}");
            }
        }
    }

    fn deserialize_pairs(bytes: &[u8]) -> Vec<(String, String)> {
        Pairs::parse(bytes.to_vec()).to_strings()
    }

    #[test]
    fn hostile_input_never_panics() {
        assert!(deserialize_pairs(&[]).is_empty());
        assert!(deserialize_pairs(&[1, 0]).is_empty());
        // A count far beyond the data, sizes that overflow, truncated values.
        assert!(deserialize_pairs(&[0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0]).is_empty());
        let mut b = serialize_pairs(&[("key", b"value")]);
        b[8] = 0xff;
        b[9] = 0xff;
        b[10] = 0xff;
        b[11] = 0xff;
        assert!(deserialize_pairs(&b).is_empty());
        let b = serialize_pairs(&[("key", b"value")]);
        for cut in 0..b.len() {
            let _ = deserialize_pairs(&b[..cut]);
        }
        // Invalid UTF-8 in a name is replaced, not fatal.
        let b = serialize_pairs(&[("k", b"v")]);
        let mut bad = b.clone();
        // Layout: count (4), key size (4), value size (4), then "k\0v\0": the key byte is at 12.
        bad[12] = 0xff;
        assert_eq!(deserialize_pairs(&bad).len(), 1);
    }
}
