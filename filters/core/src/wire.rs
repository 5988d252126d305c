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

/// Parses serialised pairs; malformed input yields what could be read, never a panic.
pub fn deserialize_pairs(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let word = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_le_bytes(b) as usize)
    };
    let Some(count) = word(0) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(count.min(256));
    let mut data = 4usize.saturating_add(count.saturating_mul(8));
    for i in 0..count {
        let (Some(ks), Some(vs)) = (word(4 + i * 8), word(8 + i * 8)) else {
            break;
        };
        let Some(k) = bytes.get(data..data.saturating_add(ks)) else {
            break;
        };
        data = data.saturating_add(ks).saturating_add(1);
        let Some(v) = bytes.get(data..data.saturating_add(vs)) else {
            break;
        };
        data = data.saturating_add(vs).saturating_add(1);
        out.push((String::from_utf8_lossy(k).into_owned(), v.to_vec()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pairs: Vec<(&str, &[u8])> =
            vec![(":path", b"/a"), ("x", b""), ("bin", &[0xff, 0x00, 0x7f])];
        let bytes = serialize_pairs(&pairs);
        let back = deserialize_pairs(&bytes);
        assert_eq!(back.len(), 3);
        assert_eq!(back[0], (":path".to_string(), b"/a".to_vec()));
        assert_eq!(back[1], ("x".to_string(), Vec::new()));
        assert_eq!(back[2].1, vec![0xff, 0x00, 0x7f]);
        assert_eq!(serialize_pairs(&[]), vec![0, 0, 0, 0]);
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
