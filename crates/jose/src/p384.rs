//! The import check of a P-384 public key: both coordinates below p and the point on the curve
//! y² = x³ − 3x + b (mod p). P-384's cofactor is 1, so a point on the curve is in the group the
//! signatures use; the identity has no affine encoding, so it cannot be named at all.
//!
//! The check runs once per key, at JWKS import, on the Montgomery arithmetic of the `rsa` module
//! (any odd modulus). ES384 signatures themselves are verified by ring, which parses the key
//! again on each call; this check lets the import refuse a bad key by name instead of every
//! token it signs failing later.

use crate::rsa::{less_than, limbs_from_be, mont_mul, neg_inv, r_squared, sub_assign};

/// 384 bits in 32-bit limbs.
const LIMBS: usize = 12;

/// p = 2³⁸⁴ − 2¹²⁸ − 2⁹⁶ + 2³² − 1, big-endian.
const P: [u8; 48] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
];

/// The curve's b (FIPS 186-4, D.1.2.4), big-endian.
const B: [u8; 48] = [
    0xb3, 0x31, 0x2f, 0xa7, 0xe2, 0x3e, 0xe7, 0xe4, 0x98, 0x8e, 0x05, 0x6b, 0xe3, 0xf8, 0x2d, 0x19,
    0x18, 0x1d, 0x9c, 0x6e, 0xfe, 0x81, 0x41, 0x12, 0x03, 0x14, 0x08, 0x8f, 0x50, 0x13, 0x87, 0x5a,
    0xc6, 0x56, 0x39, 0x8d, 0x8a, 0x2e, 0xd1, 0x9d, 0x2a, 0x85, 0xc8, 0xed, 0xd3, 0xec, 0x2a, 0xef,
];

/// Whether `point` (0x04 ‖ x ‖ y, 48 bytes each) is a P-384 point with canonical coordinates.
pub(crate) fn point_is_valid(point: &[u8]) -> bool {
    let Some((&0x04, coords)) = point.split_first() else {
        return false;
    };
    if coords.len() != 2 * 48 {
        return false;
    }
    let (x, y) = coords.split_at(48);
    let (Some(p), Some(b), Some(x), Some(y)) = (
        limbs_from_be(&P, LIMBS),
        limbs_from_be(&B, LIMBS),
        limbs_from_be(x, LIMBS),
        limbs_from_be(y, LIMBS),
    ) else {
        return false;
    };
    if !less_than(&x, &p) || !less_than(&y, &p) {
        return false;
    }
    let Some(&p0) = p.first() else {
        return false;
    };
    let p_inv = neg_inv(p0);
    let Some(r2) = r_squared(&p, p_inv, 384) else {
        return false;
    };
    let mul = |a: &[u32], b: &[u32]| {
        let mut out = vec![0u32; LIMBS];
        mont_mul(&mut out, a, b, &p, p_inv);
        out
    };
    // Every value times R (Montgomery form); a product of two such values is again one.
    let (xm, ym, bm) = (mul(&x, &r2), mul(&y, &r2), mul(&b, &r2));
    let x3 = mul(&mul(&xm, &xm), &xm);
    let three_x = add_mod(&add_mod(&xm, &xm, &p), &xm, &p);
    let rhs = add_mod(&sub_mod(&x3, &three_x, &p), &bm, &p);
    mul(&ym, &ym) == rhs
}

/// a + b mod p, for a, b < p.
fn add_mod(a: &[u32], b: &[u32], p: &[u32]) -> Vec<u32> {
    let mut out = a.to_vec();
    let carry = add_assign(&mut out, b);
    if carry || !less_than(&out, p) {
        sub_assign(&mut out, p);
    }
    out
}

/// a − b mod p, for a, b < p.
fn sub_mod(a: &[u32], b: &[u32], p: &[u32]) -> Vec<u32> {
    let mut out = a.to_vec();
    let wrapped = less_than(a, b);
    sub_assign(&mut out, b);
    if wrapped {
        // a − b + 2³⁸⁴ + p − 2³⁸⁴: the carry out of this addition cancels the borrow.
        add_assign(&mut out, p);
    }
    out
}

/// a += b over equal lengths; whether a carry left the top limb.
fn add_assign(a: &mut [u32], b: &[u32]) -> bool {
    let mut carry = 0u64;
    for (x, &y) in a.iter_mut().zip(b) {
        let s = u64::from(*x) + u64::from(y) + carry;
        *x = s as u32;
        carry = s >> 32;
    }
    carry != 0
}

#[cfg(test)]
pub(crate) mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};

    use super::*;
    use crate::testutil::hex;

    /// The generator (FIPS 186-4, D.1.2.4), uncompressed: 0x04 ‖ x ‖ y.
    pub(crate) fn generator() -> Vec<u8> {
        let mut g = vec![0x04];
        g.extend(hex("aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7"));
        g.extend(hex("3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f"));
        g
    }

    /// ring's own check of a peer point: an ephemeral key agreement, which refuses a bad point.
    fn ring_accepts(point: &[u8]) -> bool {
        use ring::agreement::{agree_ephemeral, EphemeralPrivateKey, UnparsedPublicKey, ECDH_P384};
        let rng = SystemRandom::new();
        let ours = EphemeralPrivateKey::generate(&ECDH_P384, &rng).unwrap();
        agree_ephemeral(ours, &UnparsedPublicKey::new(&ECDH_P384, point), |_| ()).is_ok()
    }

    #[test]
    fn the_generator_and_ring_keys_are_points() {
        assert!(point_is_valid(&generator()));
        let rng = SystemRandom::new();
        for _ in 0..20 {
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            let point = pair.public_key().as_ref();
            assert!(point_is_valid(point));
            assert!(ring_accepts(point));
        }
    }

    #[test]
    fn altered_points_are_refused_as_ring_refuses_them() {
        let g = generator();
        let mut cases = Vec::new();
        // Each coordinate moved by one, in its last and first byte.
        for at in [1, 48, 49, 96] {
            for delta in [1u8, 0x80] {
                let mut c = g.clone();
                c[at] ^= delta;
                cases.push(c);
            }
        }
        // The point's negation (x, p − y) is on the curve; y + p is the same point, not canonical.
        let p = BigBe::from(&P);
        let y = BigBe::from(&g[49..]);
        let mut neg = g.clone();
        neg[49..].copy_from_slice(&p.sub(&y).0);
        cases.push(neg.clone());
        // x = p and x = 0, y = 0; wrong tag; short and long encodings.
        let mut x_is_p = g.clone();
        x_is_p[1..49].copy_from_slice(&P);
        cases.push(x_is_p);
        cases.push([vec![0x04], vec![0; 96]].concat());
        let mut tag = g.clone();
        tag[0] = 0x03;
        cases.push(tag);
        cases.push(g[..96].to_vec());
        cases.push([g.clone(), vec![0]].concat());
        for c in &cases {
            assert_eq!(point_is_valid(c), ring_accepts(c), "{c:02x?}");
        }
        assert!(point_is_valid(&neg));
        assert_eq!(cases.iter().filter(|c| point_is_valid(c)).count(), 1);
    }

    #[test]
    fn coordinates_at_or_above_p_are_refused() {
        let g = generator();
        for at in [1, 49] {
            let mut c = g.clone();
            c[at..at + 48].copy_from_slice(&P);
            assert!(!point_is_valid(&c));
            c[at..at + 48].fill(0xff);
            assert!(!point_is_valid(&c));
        }
    }

    /// A 48-byte big-endian number, for building test points.
    struct BigBe(Vec<u8>);

    impl BigBe {
        fn from(b: &[u8]) -> BigBe {
            BigBe(b.to_vec())
        }

        fn sub(&self, o: &BigBe) -> BigBe {
            let mut out = vec![0u8; 48];
            let mut borrow = 0i16;
            for i in (0..48).rev() {
                let d = i16::from(self.0[i]) - i16::from(o.0[i]) - borrow;
                out[i] = d.rem_euclid(256) as u8;
                borrow = i16::from(d < 0);
            }
            BigBe(out)
        }
    }
}
