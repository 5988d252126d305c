//! Ed25519 public keys: the import checks (RFC 8032 §5.1.3) and the verifier.
//!
//! A verifier that accepts a key of small order accepts forgeries: with the identity point as the
//! key, the signature R = identity, S = 0 satisfies `[S]B = R + [k]A` for every message, and the
//! other points of order 2, 4 and 8 do the same for a share of messages. The verifier below (as
//! ring's) does not look at the key's order, so [`weak_key_reason`] refuses such keys before
//! they reach it, on the encoding alone, and with them every encoding that is not the canonical
//! one of its point.
//!
//! Why the encoding is enough: the points of order dividing 8 are exactly the eight points of the
//! curve's torsion subgroup. Their y-coordinates are 1 (the identity, order 1), p − 1 (order 2),
//! 0 (two points of order 4) and ±`Y8` (four points of order 8). An encoding is the little-endian
//! y with the sign of x in the top bit, so a torsion point is recognised by its y alone, whatever
//! its sign bit; and every non-canonical encoding either has y ≥ p or gives x = 0 (y = ±1) a
//! negative sign. The tests derive the eight points with curve25519-dalek and compare.
//!
//! An encoding that is canonical but names no point of the curve is refused by
//! [`VerifyingKey::from_bytes`], which decodes the key once, at import.
//!
//! Verification ([`VerifyingKey::verify`]) is RFC 8032's cofactorless check, as ring and
//! `ed25519-dalek`'s `verify_strict` do it: the signature is 64 bytes, S < L, k = SHA-512(R ‖ A ‖
//! M) mod L, and the encoding of [S]B − [k]A must equal R byte for byte (so a non-canonical R
//! never matches). The arithmetic is the `curve25519` module's.

use crate::digest;

use crate::curve25519::{double_scalar_mul_base, Point, Tables, A_TABLE};
use crate::rsa::{less_than as limbs_less_than, mont_mul, neg_inv, r_squared, sub_assign};

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

/// The group order L = 2^252 + 27742317777372353535851937790883648493, little-endian.
pub(crate) const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
];

/// An Ed25519 public key, decoded once, with its tables of multiples for verification.
pub(crate) struct VerifyingKey {
    encoded: [u8; 32],
    tables: Box<Tables<A_TABLE>>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("encoded", &self.encoded)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// Decodes the key and builds its tables; `None` when the bytes name no point (y ≥ p, no x
    /// for this y, or x = 0 with the sign bit set). Small-order keys decode: refusing them is
    /// [`weak_key_reason`]'s job.
    pub(crate) fn from_bytes(encoded: &[u8; 32]) -> Option<VerifyingKey> {
        let point = Point::decompress(encoded)?;
        Some(VerifyingKey {
            encoded: *encoded,
            tables: Tables::build(&point),
        })
    }

    pub(crate) fn encoded(&self) -> &[u8; 32] {
        &self.encoded
    }

    /// Whether `signature` (R ‖ S, 64 bytes) is this key's signature of `message`.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = <&[u8; 64]>::try_from(signature) else {
            return false;
        };
        let (r, s) = signature.split_at(32);
        let (Ok(r), Ok(s)) = (<[u8; 32]>::try_from(r), <[u8; 32]>::try_from(s)) else {
            return false;
        };
        if !less_than(&s, &L) {
            return false;
        }
        let mut hash = digest::Context::new(digest::Algorithm::Sha512);
        hash.update(&r);
        hash.update(&self.encoded);
        hash.update(message);
        let Ok(wide) = <[u8; 64]>::try_from(hash.finish().as_ref()) else {
            return false;
        };
        let k = reduce_wide(&wide);
        double_scalar_mul_base(&s, &k, &self.tables).compress() == r
    }
}

/// Little-endian bytes as eight 32-bit limbs.
pub(crate) fn limbs_le(bytes: &[u8]) -> [u32; 8] {
    let mut out = [0u32; 8];
    for (limb, chunk) in out.iter_mut().zip(bytes.chunks(4)) {
        *limb = chunk
            .iter()
            .rev()
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
    }
    out
}

/// L's Montgomery constants (R = 2^256): −L⁻¹ mod 2³², R² mod L, R³ mod L, and L·2^j for
/// j = 3, 2, 1, 0.
struct ScalarConstants {
    l: [u32; 8],
    l0: u32,
    r2: [u32; 8],
    r3: [u32; 8],
    shifted: [[u32; 8]; 4],
}

fn scalar_constants() -> &'static ScalarConstants {
    static CONSTANTS: std::sync::OnceLock<ScalarConstants> = std::sync::OnceLock::new();
    CONSTANTS.get_or_init(|| {
        let l = limbs_le(&L);
        let l0 = neg_inv(l.first().copied().unwrap_or(1));
        let mut r2 = [0u32; 8];
        if let Some(v) = r_squared(&l, l0, 253) {
            r2.copy_from_slice(&v);
        }
        let mut r3 = [0u32; 8];
        mont_mul(&mut r3, &r2, &r2, &l, l0);
        let mut shifted = [l; 4];
        for (slot, shift) in shifted.iter_mut().zip([3u32, 2, 1, 0]) {
            let mut carry = 0u32;
            for limb in slot.iter_mut() {
                let next = if shift == 0 { 0 } else { *limb >> (32 - shift) };
                *limb = (*limb << shift) | carry;
                carry = next;
            }
        }
        ScalarConstants {
            l,
            l0,
            r2,
            r3,
            shifted,
        }
    })
}

/// A 512-bit little-endian number mod L, as 32 little-endian bytes.
pub(crate) fn reduce_wide(wide: &[u8; 64]) -> [u8; 32] {
    let c = scalar_constants();
    let (lo, hi) = wide.split_at(32);
    // Each half below L first (it is below 2^256 < 16·L), as Montgomery products want.
    let below_l = |bytes: &[u8]| {
        let mut x = limbs_le(bytes);
        for m in &c.shifted {
            if !limbs_less_than(&x, m) {
                sub_assign(&mut x, m);
            }
        }
        x
    };
    let (lo, hi) = (below_l(lo), below_l(hi));
    // lo·R + hi·R² ≡ (lo + hi·2^256)·R, and one more product by 1 divides by R.
    let mut a = [0u32; 8];
    let mut b = [0u32; 8];
    mont_mul(&mut a, &lo, &c.r2, &c.l, c.l0);
    mont_mul(&mut b, &hi, &c.r3, &c.l, c.l0);
    // a + b < 2L < 2^254: no carry out of the top limb.
    let mut carry = 0u64;
    for (x, &y) in a.iter_mut().zip(&b) {
        let s = u64::from(*x) + u64::from(y) + carry;
        *x = s as u32;
        carry = s >> 32;
    }
    if !limbs_less_than(&a, &c.l) {
        sub_assign(&mut a, &c.l);
    }
    let one = limbs_le(&[1]);
    let mut k = [0u32; 8];
    mont_mul(&mut k, &a, &one, &c.l, c.l0);
    let mut out = [0u8; 32];
    for (chunk, limb) in out.chunks_mut(4).zip(k) {
        chunk.copy_from_slice(&limb.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{hex, hex_array, random_bytes};

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
        let rfc =
            hex_array::<32>("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        assert_eq!(weak_key_reason(&rfc), None);
        let base =
            hex_array::<32>("5866666666666666666666666666666666666666666666666666666666666666");
        assert_eq!(weak_key_reason(&base), None);
        // p − 2 is canonical (the largest canonical y but one) and no torsion point.
        let mut pm2 = P;
        pm2[0] -= 2;
        assert_eq!(weak_key_reason(&pm2), None);
    }

    #[test]
    fn wide_reduction_agrees_with_curve25519_dalek() {
        use curve25519_dalek::scalar::Scalar;
        let mut cases: Vec<[u8; 64]> = vec![[0; 64], [0xff; 64]];
        let mut l_wide = [0u8; 64];
        l_wide[..32].copy_from_slice(&L);
        cases.push(l_wide);
        let mut l_high = [0u8; 64];
        l_high[32..].copy_from_slice(&L);
        cases.push(l_high);
        for _ in 0..2000 {
            cases.push(random_bytes());
        }
        for wide in cases {
            assert_eq!(
                reduce_wide(&wide),
                Scalar::from_bytes_mod_order_wide(&wide).to_bytes(),
                "{wide:?}"
            );
        }
        assert_eq!(
            L,
            {
                let mut l = (Scalar::ZERO - Scalar::ONE).to_bytes();
                l[0] += 1;
                l
            },
            "L is the order of curve25519-dalek's scalars"
        );
    }

    /// RFC 8032 §7.1, tests 1 to 3, through this module's verifier; and with one bit of the
    /// signature or the message changed, nothing verifies.
    #[test]
    fn rfc_8032_vectors() {
        let vectors = [
            ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
             "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
            ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
             "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
            ("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
             "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
        ];
        for (public, message, signature) in vectors {
            let key = VerifyingKey::from_bytes(&hex(public).try_into().unwrap()).unwrap();
            let (message, signature) = (hex(message), hex(signature));
            assert!(key.verify(&message, &signature));
            for bit in [0, 100, 255, 256, 300, 511] {
                let mut bad = signature.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(!key.verify(&message, &bad), "bit {bit}");
            }
            let mut other = message.clone();
            other.push(0);
            assert!(!key.verify(&other, &signature));
            assert!(!key.verify(&message, &signature[..63]));
        }
    }

    #[test]
    fn a_key_that_is_no_point_is_refused_at_decoding() {
        // y = 2: (y² − 1)/(d·y² + 1) has no square root, so no point has y = 2.
        assert!(VerifyingKey::from_bytes(&small(2)).is_none());
        assert!(curve25519_dalek::edwards::CompressedEdwardsY(small(2))
            .decompress()
            .is_none());
        assert!(VerifyingKey::from_bytes(&small(1)).is_some());
        // y ≥ p.
        assert!(VerifyingKey::from_bytes(&P).is_none());
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
