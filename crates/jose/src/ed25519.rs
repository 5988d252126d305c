//! Import checks for Ed25519 public keys (RFC 8032 §5.1.3), on the encoding alone.
//!
//! A verifier that accepts a key of small order accepts forgeries: with the identity point as the
//! key, the signature R = identity, S = 0 satisfies `[S]B = R + [k]A` for every message, and the
//! other points of order 2, 4 and 8 do the same for a share of messages. ring verifies without
//! looking at the key's order, so this module refuses such keys before they reach it, and with
//! them every encoding that is not the canonical one of its point.
//!
//! Why the encoding is enough: the points of order dividing 8 are exactly the eight points of the
//! curve's torsion subgroup. Their y-coordinates are 1 (the identity, order 1), p − 1 (order 2),
//! 0 (two points of order 4) and ±`Y8` (four points of order 8). An encoding is the little-endian
//! y with the sign of x in the top bit, so a torsion point is recognised by its y alone, whatever
//! its sign bit; and every non-canonical encoding either has y ≥ p or gives x = 0 (y = ±1) a
//! negative sign. The tests derive the eight points with curve25519-dalek and compare.
//!
//! An encoding that is canonical but names no point of the curve is not refused here: ring fails
//! to decode it on every verification, so it can never verify anything.

/// p = 2^255 − 19, little-endian.
const P: [u8; 32] = {
    let mut p = [0xff; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// The y-coordinate shared by the four points of order 8 (one sign of it; p − y is the other),
/// little-endian.
const Y8: [u8; 32] = [
    0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
    0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
];

/// Why an Ed25519 public key is refused, as a stable reason for the skipped-key list.
pub(crate) fn weak_key_reason(encoded: &[u8; 32]) -> Option<&'static str> {
    let mut y = *encoded;
    let x_negative = y[31] & 0x80 != 0;
    y[31] &= 0x7f;
    if !less_than(&y, &P) {
        return Some("ed25519_non_canonical");
    }
    let one = small(1);
    let minus_one = p_minus(&one);
    if x_negative && (y == one || y == minus_one) {
        // x = 0 has no negative: "−0" is a second encoding of the points of order 1 and 2.
        return Some("ed25519_non_canonical");
    }
    let torsion_y = [small(0), one, minus_one, Y8, p_minus(&Y8)];
    if torsion_y.contains(&y) {
        return Some("ed25519_small_order");
    }
    None
}

fn small(v: u8) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[0] = v;
    out
}

/// Whether a < b, both little-endian.
fn less_than(a: &[u8; 32], b: &[u8; 32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// p − a for a < p, little-endian.
fn p_minus(a: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for ((o, &pi), &ai) in out.iter_mut().zip(P.iter()).zip(a.iter()) {
        let d = i16::from(pi) - i16::from(ai) - borrow;
        borrow = i16::from(d < 0);
        // In range 0..=255 after adding 256 back on a borrow.
        *o = (d + 256 * borrow) as u8;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn the_identity_and_its_other_encodings_are_refused() {
        // The key of the reported forgery: the identity point (0, 1).
        assert_eq!(weak_key_reason(&small(1)), Some("ed25519_small_order"));
        // The identity with the sign bit set ("−0"), and as y = p + 1.
        let mut neg = small(1);
        neg[31] |= 0x80;
        assert_eq!(weak_key_reason(&neg), Some("ed25519_non_canonical"));
        let mut p1 = P;
        p1[0] += 1;
        assert_eq!(weak_key_reason(&p1), Some("ed25519_non_canonical"));
        // y = p (≡ 0) and the largest 255-bit value.
        assert_eq!(weak_key_reason(&P), Some("ed25519_non_canonical"));
        assert_eq!(weak_key_reason(&[0xff; 32]), Some("ed25519_non_canonical"));
    }

    #[test]
    fn points_of_order_2_4_and_8_are_refused() {
        let order2 = p_minus(&small(1));
        assert_eq!(weak_key_reason(&order2), Some("ed25519_small_order"));
        let mut order4 = small(0);
        assert_eq!(weak_key_reason(&order4), Some("ed25519_small_order"));
        order4[31] |= 0x80;
        assert_eq!(weak_key_reason(&order4), Some("ed25519_small_order"));
        for y in [Y8, p_minus(&Y8)] {
            let mut enc = y;
            assert_eq!(weak_key_reason(&enc), Some("ed25519_small_order"));
            enc[31] |= 0x80;
            assert_eq!(weak_key_reason(&enc), Some("ed25519_small_order"));
        }
    }

    #[test]
    fn ordinary_keys_pass() {
        // RFC 8032 §7.1 test 1, and the base point.
        let rfc = hex32("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        assert_eq!(weak_key_reason(&rfc), None);
        let base = hex32("5866666666666666666666666666666666666666666666666666666666666666");
        assert_eq!(weak_key_reason(&base), None);
        // p − 2 is canonical (the largest canonical y but one) and no torsion point.
        let mut pm2 = P;
        pm2[0] -= 2;
        assert_eq!(weak_key_reason(&pm2), None);
    }

    #[test]
    fn p_minus_is_subtraction() {
        assert_eq!(p_minus(&small(0)), P);
        let mut pm1 = P;
        pm1[0] -= 1;
        assert_eq!(p_minus(&small(1)), pm1);
        assert_eq!(p_minus(&p_minus(&Y8)), Y8);
    }
}
