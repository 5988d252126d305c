//! ECDSA P-384 / SHA-384 verification (ES384), variable time, and the import check of a P-384
//! public key (both coordinates below p, the point on y² = x³ − 3x + b; P-384's cofactor is 1,
//! so a point on the curve is in the group the signatures use, and the identity has no affine
//! encoding at all).
//!
//! Why this exists: ring 0.17 re-parsed the key on every call and ran two constant-time scalar
//! multiplications meant for private keys; in V8 that took 6.1 ms per verification. Nothing in a
//! verification is secret, so this is variable time, on the generic Montgomery arithmetic of
//! the `rsa` module (twelve 32-bit limbs, any odd modulus) for both the field (mod p) and the
//! scalars (mod n):
//! - `u1·G + u2·Q` in one pass of doublings (Shamir's trick) with width-w NAF digits of both
//!   scalars added from tables of odd multiples in affine form (mixed additions): G's table
//!   (window 6, sixteen points) is built once per VM, Q's (window 5, eight points) once per key
//!   at import ([`VerifyingKey::from_uncompressed`]), each normalised with one shared inversion;
//! - `s⁻¹ mod n` by Fermat's little theorem, and `x(R) mod n = r` checked without leaving
//!   Jacobian coordinates (`X = r·Z²`, and `(r + n)·Z²` when `r + n < p`).
//!
//! Every check of ECDSA verification stays: the signature is exactly 96 bytes, `r` and `s` lie in
//! `[1, n−1]`, the hash is reduced mod n, the sum must not be the point at infinity; the point
//! formulas handle every special case (a point added to itself or to its negation, infinity).

use std::sync::OnceLock;

use crate::digest;
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

/// Whether `point` (0x04 ‖ x ‖ y, 48 bytes each) is a P-384 point with canonical coordinates: the
/// import check as a yes or no, for the tests that hold it against ring's.
#[cfg(test)]
pub(crate) fn point_is_valid(point: &[u8]) -> bool {
    affine_point(point).is_some()
}

/// The affine point `point` names (Montgomery form), if both coordinates are below p and it lies
/// on y² = x³ − 3x + b.
fn affine_point(point: &[u8]) -> Option<Affine> {
    let (&0x04, coords) = point.split_first()? else {
        return None;
    };
    if coords.len() != 2 * 48 {
        return None;
    }
    let c = curve()?;
    let f = &c.p;
    let x = limbs(coords.get(..48)?)?;
    let y = limbs(coords.get(48..)?)?;
    if !less_than(&x, &f.m) || !less_than(&y, &f.m) {
        return None;
    }
    let (xm, ym) = (f.to_mont(&x), f.to_mont(&y));
    let x3 = f.mul(&f.mul(&xm, &xm), &xm);
    let three_x = f.add(&f.add(&xm, &xm), &xm);
    let rhs = f.add(&f.sub(&x3, &three_x), &c.b);
    (f.mul(&ym, &ym) == rhs).then_some(Affine { x: xm, y: ym })
}

/// A 384-bit number as twelve 32-bit limbs, least significant first.
type Limbs = [u32; LIMBS];

/// The group order n (FIPS 186-4, D.1.2.4), big-endian.
const N: [u8; 48] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf,
    0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
];

/// The generator's coordinates (FIPS 186-4, D.1.2.4), big-endian.
const GX: [u8; 48] = [
    0xaa, 0x87, 0xca, 0x22, 0xbe, 0x8b, 0x05, 0x37, 0x8e, 0xb1, 0xc7, 0x1e, 0xf3, 0x20, 0xad, 0x74,
    0x6e, 0x1d, 0x3b, 0x62, 0x8b, 0xa7, 0x9b, 0x98, 0x59, 0xf7, 0x41, 0xe0, 0x82, 0x54, 0x2a, 0x38,
    0x55, 0x02, 0xf2, 0x5d, 0xbf, 0x55, 0x29, 0x6c, 0x3a, 0x54, 0x5e, 0x38, 0x72, 0x76, 0x0a, 0xb7,
];
const GY: [u8; 48] = [
    0x36, 0x17, 0xde, 0x4a, 0x96, 0x26, 0x2c, 0x6f, 0x5d, 0x9e, 0x98, 0xbf, 0x92, 0x92, 0xdc, 0x29,
    0xf8, 0xf4, 0x1d, 0xbd, 0x28, 0x9a, 0x14, 0x7c, 0xe9, 0xda, 0x31, 0x13, 0xb5, 0xf0, 0xb8, 0xc0,
    0x0a, 0x60, 0xb1, 0xce, 0x1d, 0x7e, 0x81, 0x9d, 0x7a, 0x43, 0x1d, 0x7c, 0x90, 0xea, 0x0e, 0x5f,
];

/// NAF window of G's table (2^(6−2) = 16 odd multiples) and of each key's (8).
const G_WINDOW: u32 = 6;
const Q_WINDOW: u32 = 5;

/// Big-endian bytes (at most 48) as limbs.
fn limbs(be: &[u8]) -> Option<Limbs> {
    let v = limbs_from_be(be, LIMBS)?;
    <Limbs>::try_from(v.as_slice()).ok()
}

/// An odd modulus with its Montgomery constants: −m⁻¹ mod 2³², R mod m and R² mod m
/// (R = 2³⁸⁴).
struct Modulus {
    m: Limbs,
    m_inv: u32,
    r2: Limbs,
    one: Limbs,
}

impl Modulus {
    fn new(be: &[u8; 48]) -> Option<Modulus> {
        let m = limbs(be)?;
        let m_inv = neg_inv(*m.first()?);
        let r2 = limbs_to_array(&r_squared(&m, m_inv, 384)?)?;
        let mut modulus = Modulus {
            m,
            m_inv,
            r2,
            one: [0; LIMBS],
        };
        let mut unit = [0u32; LIMBS];
        *unit.first_mut()? = 1;
        modulus.one = modulus.to_mont(&unit);
        Some(modulus)
    }

    /// a·b·R⁻¹ mod m.
    fn mul(&self, a: &Limbs, b: &Limbs) -> Limbs {
        let mut out = [0u32; LIMBS];
        mont_mul(&mut out, a, b, &self.m, self.m_inv);
        out
    }

    fn to_mont(&self, a: &Limbs) -> Limbs {
        self.mul(a, &self.r2)
    }

    #[cfg(test)]
    fn out_of_mont(&self, a: &Limbs) -> Limbs {
        let mut unit = [0u32; LIMBS];
        unit[0] = 1;
        self.mul(a, &unit)
    }

    fn add(&self, a: &Limbs, b: &Limbs) -> Limbs {
        let mut out = *a;
        let carry = add_assign(&mut out, b);
        if carry || !less_than(&out, &self.m) {
            sub_assign(&mut out, &self.m);
        }
        out
    }

    fn sub(&self, a: &Limbs, b: &Limbs) -> Limbs {
        let mut out = *a;
        let wrapped = less_than(a, b);
        sub_assign(&mut out, b);
        if wrapped {
            add_assign(&mut out, &self.m);
        }
        out
    }

    /// a^(m−2) = a⁻¹ for a prime m and a ≠ 0, in the Montgomery domain.
    fn invert(&self, a: &Limbs) -> Limbs {
        let mut e = self.m;
        // m is odd and far above 2: m − 2 only changes the low limb.
        e[0] = e[0].wrapping_sub(2);
        let mut acc = self.one;
        for limb in e.iter().rev() {
            for bit in (0..32).rev() {
                acc = self.mul(&acc, &acc);
                if (limb >> bit) & 1 == 1 {
                    acc = self.mul(&acc, a);
                }
            }
        }
        acc
    }
}

/// A limb vector of `LIMBS` entries as an array.
fn limbs_to_array(v: &[u32]) -> Option<Limbs> {
    <Limbs>::try_from(v).ok()
}

/// The field, the scalars and G's table, once per VM.
struct Curve {
    p: Modulus,
    n: Modulus,
    /// n as limbs of a field element (to test r + n < p).
    n_limbs: Limbs,
    /// The curve's b, in Montgomery form.
    b: Limbs,
    g: Vec<Affine>,
}

fn curve() -> Option<&'static Curve> {
    static CURVE: OnceLock<Option<Curve>> = OnceLock::new();
    CURVE
        .get_or_init(|| {
            let p = Modulus::new(&P)?;
            let n = Modulus::new(&N)?;
            let g = Affine {
                x: p.to_mont(&limbs(&GX)?),
                y: p.to_mont(&limbs(&GY)?),
            };
            let n_limbs = limbs(&N)?;
            let b = p.to_mont(&limbs(&B)?);
            let g = odd_multiples(&p, &g, G_WINDOW);
            Some(Curve {
                p,
                n,
                n_limbs,
                b,
                g,
            })
        })
        .as_ref()
}

/// A point in affine coordinates, in the Montgomery domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Affine {
    x: Limbs,
    y: Limbs,
}

/// A point in Jacobian coordinates (X/Z², Y/Z³), the point at infinity when Z = 0.
#[derive(Clone, Copy, Debug)]
struct Jacobian {
    x: Limbs,
    y: Limbs,
    z: Limbs,
}

impl Jacobian {
    fn infinity(f: &Modulus) -> Jacobian {
        Jacobian {
            x: f.one,
            y: f.one,
            z: [0; LIMBS],
        }
    }

    fn from_affine(f: &Modulus, a: &Affine) -> Jacobian {
        Jacobian {
            x: a.x,
            y: a.y,
            z: f.one,
        }
    }

    fn is_infinity(&self) -> bool {
        self.z.iter().all(|&l| l == 0)
    }

    /// 2P, "dbl-2001-b" (a = −3). Infinity maps to infinity (Z3 = 2·Y·Z); the curve has no point
    /// of order 2.
    fn double(&self, f: &Modulus) -> Jacobian {
        let delta = f.mul(&self.z, &self.z);
        let gamma = f.mul(&self.y, &self.y);
        let beta = f.mul(&self.x, &gamma);
        let t = f.mul(&f.sub(&self.x, &delta), &f.add(&self.x, &delta));
        let alpha = f.add(&f.add(&t, &t), &t);
        let beta2 = f.add(&beta, &beta);
        let beta4 = f.add(&beta2, &beta2);
        let beta8 = f.add(&beta4, &beta4);
        let x3 = f.sub(&f.mul(&alpha, &alpha), &beta8);
        let yz = f.add(&self.y, &self.z);
        let z3 = f.sub(&f.sub(&f.mul(&yz, &yz), &gamma), &delta);
        let gamma2 = f.mul(&gamma, &gamma);
        let gamma2_2 = f.add(&gamma2, &gamma2);
        let gamma2_4 = f.add(&gamma2_2, &gamma2_2);
        let gamma2_8 = f.add(&gamma2_4, &gamma2_4);
        let y3 = f.sub(&f.mul(&alpha, &f.sub(&beta4, &x3)), &gamma2_8);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// P + A for an affine A (mixed addition), with every special case: P at infinity, P = A
    /// (doubling), P = −A (infinity).
    fn add_affine(&self, f: &Modulus, a: &Affine) -> Jacobian {
        if self.is_infinity() {
            return Jacobian::from_affine(f, a);
        }
        let z1z1 = f.mul(&self.z, &self.z);
        let u2 = f.mul(&a.x, &z1z1);
        let s2 = f.mul(&f.mul(&a.y, &self.z), &z1z1);
        let h = f.sub(&u2, &self.x);
        let r = f.sub(&s2, &self.y);
        if h.iter().all(|&l| l == 0) {
            return if r.iter().all(|&l| l == 0) {
                self.double(f)
            } else {
                Jacobian::infinity(f)
            };
        }
        let hh = f.mul(&h, &h);
        let hhh = f.mul(&hh, &h);
        let v = f.mul(&self.x, &hh);
        let x3 = f.sub(&f.sub(&f.mul(&r, &r), &hhh), &f.add(&v, &v));
        let y3 = f.sub(&f.mul(&r, &f.sub(&v, &x3)), &f.mul(&self.y, &hhh));
        let z3 = f.mul(&self.z, &h);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }
}

/// P, 3P, 5P, …, (2^(w−1) − 1)P in affine form, for a finite point P of the curve: none of them is
/// infinity (the group has prime order n, far above these multiples), so one inversion of the
/// product of their Z normalises them all (Montgomery's trick).
fn odd_multiples(f: &Modulus, p: &Affine, window: u32) -> Vec<Affine> {
    let count = 1usize << (window - 2);
    let twice = Jacobian::from_affine(f, p).double(f);
    let twice = {
        // 2P in affine form, for the mixed additions that build the table.
        let zi = f.invert(&twice.z);
        let zi2 = f.mul(&zi, &zi);
        Affine {
            x: f.mul(&twice.x, &zi2),
            y: f.mul(&f.mul(&twice.y, &zi2), &zi),
        }
    };
    let mut points = Vec::with_capacity(count);
    let mut current = Jacobian::from_affine(f, p);
    for _ in 0..count {
        points.push(current);
        current = current.add_affine(f, &twice);
    }
    // prefix[i] = Z_0·…·Z_i.
    let mut prefix = Vec::with_capacity(count);
    let mut acc = f.one;
    for pt in &points {
        acc = f.mul(&acc, &pt.z);
        prefix.push(acc);
    }
    let mut inv = f.invert(&acc);
    let mut out = vec![*p; count];
    for i in (0..count).rev() {
        let (Some(pt), Some(slot)) = (points.get(i), out.get_mut(i)) else {
            continue;
        };
        // inv = (Z_0·…·Z_i)⁻¹; Z_i⁻¹ = inv · Z_0·…·Z_(i−1).
        let zi = match i.checked_sub(1).and_then(|j| prefix.get(j)) {
            Some(before) => f.mul(&inv, before),
            None => inv,
        };
        inv = f.mul(&inv, &pt.z);
        let zi2 = f.mul(&zi, &zi);
        *slot = Affine {
            x: f.mul(&pt.x, &zi2),
            y: f.mul(&f.mul(&pt.y, &zi2), &zi),
        };
    }
    out
}

/// Width-w NAF digits of k, least significant first: every digit zero or odd with
/// |d| < 2^(w−1), and at most one non-zero digit in any w in a row.
fn naf(k: &Limbs, window: u32) -> Vec<i8> {
    // One limb more than k: k + 2^(w−1) may carry above 384 bits.
    let mut x = [0u32; LIMBS + 1];
    for (dst, src) in x.iter_mut().zip(k) {
        *dst = *src;
    }
    let modulus = 1i32 << window;
    let mut digits = Vec::with_capacity(390);
    while x.iter().any(|&l| l != 0) {
        let low = x.first().copied().unwrap_or(0);
        let mut d = 0i32;
        if low & 1 == 1 {
            d = (low & (modulus as u32 - 1)) as i32;
            if d >= modulus / 2 {
                d -= modulus;
            }
            // x −= d: subtract a positive digit, add the magnitude of a negative one.
            let mut carry = i64::from(-d);
            for limb in x.iter_mut() {
                let v = i64::from(*limb) + carry;
                *limb = v as u32;
                carry = v >> 32;
                if carry == 0 {
                    break;
                }
            }
        }
        digits.push(d as i8);
        // x >>= 1
        let mut high = 0u32;
        for limb in x.iter_mut().rev() {
            let next = *limb & 1;
            *limb = (*limb >> 1) | (high << 31);
            high = next;
        }
    }
    digits
}

/// The table entry for a NAF digit: ±(|d|)·P from the odd multiples, the negation by p − y.
fn entry(f: &Modulus, table: &[Affine], d: i8) -> Option<Affine> {
    let index = usize::from(d.unsigned_abs() / 2);
    let a = *table.get(index)?;
    Some(if d < 0 {
        Affine {
            x: a.x,
            y: f.sub(&[0; LIMBS], &a.y),
        }
    } else {
        a
    })
}

/// A P-384 public key ready for verification: its table of odd multiples, built at import.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct VerifyingKey {
    table: Vec<Affine>,
}

impl VerifyingKey {
    /// Imports an uncompressed point `04 || x || y`: both coordinates below p, on the curve.
    pub(crate) fn from_uncompressed(point: &[u8]) -> Option<VerifyingKey> {
        let q = affine_point(point)?;
        let c = curve()?;
        Some(VerifyingKey {
            table: odd_multiples(&c.p, &q, Q_WINDOW),
        })
    }

    /// Verifies an ES384 signature (`r || s`, 48 bytes each, big-endian) over `message`.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.check(message, signature).unwrap_or(false)
    }

    fn check(&self, message: &[u8], signature: &[u8]) -> Option<bool> {
        let c = curve()?;
        if signature.len() != 96 {
            return Some(false);
        }
        let r = limbs(signature.get(..48)?)?;
        let s = limbs(signature.get(48..)?)?;
        let in_range = |v: &Limbs| v.iter().any(|&l| l != 0) && less_than(v, &c.n.m);
        if !in_range(&r) || !in_range(&s) {
            return Some(false);
        }
        // e: the whole 384-bit hash, below 2n, reduced mod n.
        let hash = digest::digest(digest::Algorithm::Sha384, message);
        let mut e = limbs(hash.as_ref())?;
        if !less_than(&e, &c.n.m) {
            sub_assign(&mut e, &c.n.m);
        }
        // w = s⁻¹·R (Montgomery form); u = x·w·R⁻¹ = x·s⁻¹ in normal form.
        let w = c.n.invert(&c.n.to_mont(&s));
        let u1 = c.n.mul(&e, &w);
        let u2 = c.n.mul(&r, &w);
        let sum = double_mul(c, &u1, &u2, &self.table)?;
        if sum.is_infinity() {
            return Some(false);
        }
        // x(R) = X/Z²; x(R) mod n = r means x(R) is r or r + n (the latter only when below p).
        let f = &c.p;
        let z2 = f.mul(&sum.z, &sum.z);
        if f.mul(&f.to_mont(&r), &z2) == sum.x {
            return Some(true);
        }
        let mut r_plus_n = r;
        let carry = add_assign(&mut r_plus_n, &c.n_limbs);
        Some(!carry && less_than(&r_plus_n, &f.m) && f.mul(&f.to_mont(&r_plus_n), &z2) == sum.x)
    }
}

/// u1·G + u2·Q with one chain of doublings over both scalars' NAF digits.
fn double_mul(c: &Curve, u1: &Limbs, u2: &Limbs, q_table: &[Affine]) -> Option<Jacobian> {
    let f = &c.p;
    let d1 = naf(u1, G_WINDOW);
    let d2 = naf(u2, Q_WINDOW);
    let mut acc = Jacobian::infinity(f);
    for i in (0..d1.len().max(d2.len())).rev() {
        acc = acc.double(f);
        if let Some(&d) = d1.get(i).filter(|&&d| d != 0) {
            acc = acc.add_affine(f, &entry(f, &c.g, d)?);
        }
        if let Some(&d) = d2.get(i).filter(|&&d| d != 0) {
            acc = acc.add_affine(f, &entry(f, q_table, d)?);
        }
    }
    Some(acc)
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

    fn random_scalar(c: &Curve) -> Limbs {
        loop {
            let bytes = crate::testutil::random_vec(48);
            let k = limbs(&bytes).unwrap();
            if less_than(&k, &c.n.m) && k.iter().any(|&l| l != 0) {
                return k;
            }
        }
    }

    /// The number Σ dᵢ·2ⁱ the digits stand for, summed in signed 64-bit limbs and normalised.
    fn from_naf(digits: &[i8]) -> Limbs {
        let mut acc = [0i64; LIMBS + 1];
        for (i, &d) in digits.iter().enumerate() {
            acc[i / 32] += i64::from(d) << (i % 32);
        }
        // Normalise the signed limbs into 32-bit ones.
        let mut out = [0u32; LIMBS];
        let mut carry = 0i64;
        for (i, a) in acc.iter().enumerate() {
            let v = a + carry;
            if i < LIMBS {
                out[i] = v as u32;
            } else {
                assert_eq!(v, 0, "the NAF value leaves 384 bits");
            }
            carry = v >> 32;
        }
        out
    }

    #[test]
    fn naf_digits_give_back_the_scalar() {
        let c = curve().unwrap();
        let mut scalars: Vec<Limbs> = (0..300).map(|_| random_scalar(c)).collect();
        let mut n_minus_1 = c.n.m;
        n_minus_1[0] -= 1;
        scalars.push(n_minus_1);
        scalars.push({
            let mut one = [0u32; LIMBS];
            one[0] = 1;
            one
        });
        scalars.push([u32::MAX; LIMBS]);
        for k in scalars {
            for w in [G_WINDOW, Q_WINDOW, 2] {
                let digits = naf(&k, w);
                assert_eq!(from_naf(&digits), k, "w {w}");
                assert!(digits.len() <= 385);
                let bound = 1i32 << (w - 1);
                for (i, &d) in digits.iter().enumerate() {
                    assert!(d == 0 || (d % 2 != 0 && i32::from(d).abs() < bound));
                    // At most one non-zero digit in any w consecutive.
                    if d != 0 {
                        for &e in digits.iter().skip(i + 1).take(w as usize - 1) {
                            assert_eq!(e, 0, "w {w}");
                        }
                    }
                }
            }
        }
        assert!(naf(&[0; LIMBS], 5).is_empty());
    }

    #[test]
    fn inversion_and_the_montgomery_domain() {
        let c = curve().unwrap();
        for m in [&c.p, &c.n] {
            for _ in 0..50 {
                let mut a = limbs(&crate::testutil::random_vec(48)).unwrap();
                if !less_than(&a, &m.m) {
                    sub_assign(&mut a, &m.m);
                }
                let am = m.to_mont(&a);
                assert_eq!(m.out_of_mont(&am), a);
                if a.iter().all(|&l| l == 0) {
                    continue;
                }
                assert_eq!(m.mul(&am, &m.invert(&am)), m.one);
            }
        }
    }

    /// The affine point of a Jacobian one (test only: an inversion per call).
    fn to_affine(f: &Modulus, p: &Jacobian) -> Option<Affine> {
        if p.is_infinity() {
            return None;
        }
        let zi = f.invert(&p.z);
        let zi2 = f.mul(&zi, &zi);
        Some(Affine {
            x: f.mul(&p.x, &zi2),
            y: f.mul(&f.mul(&p.y, &zi2), &zi),
        })
    }

    #[test]
    fn tables_hold_the_odd_multiples_and_the_sum_matches_ring() {
        let c = curve().unwrap();
        let f = &c.p;
        let g = Affine {
            x: f.to_mont(&limbs(&GX).unwrap()),
            y: f.to_mont(&limbs(&GY).unwrap()),
        };
        // Each entry (2i+1)·G, built here by additions one G at a time.
        let mut acc = Jacobian::from_affine(f, &g);
        for (i, entry) in c.g.iter().enumerate() {
            assert_eq!(to_affine(f, &acc), Some(*entry), "{}·G", 2 * i + 1);
            acc = acc.add_affine(f, &g).add_affine(f, &g);
        }
        assert_eq!(c.g.len(), 16);
        // The special cases of the mixed addition: P + P doubles, P + (−P) is infinity.
        let p = Jacobian::from_affine(f, &g);
        assert_eq!(
            to_affine(f, &p.add_affine(f, &g)),
            to_affine(f, &p.double(f))
        );
        let neg = Affine {
            x: g.x,
            y: f.sub(&[0; LIMBS], &g.y),
        };
        assert!(p.add_affine(f, &neg).is_infinity());
        assert!(Jacobian::infinity(f).double(f).is_infinity());
        // k·G through `double_mul` with u2 = 0 against ring's public key for k.
        let rng = SystemRandom::new();
        for _ in 0..5 {
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            let point = pair.public_key().as_ref();
            let key = VerifyingKey::from_uncompressed(point).unwrap();
            // Q's table starts at Q itself.
            assert_eq!(
                f.out_of_mont(&key.table[0].x).to_vec(),
                limbs_from_be(&point[1..49], LIMBS).unwrap()
            );
            // u1·G + u2·Q with u1 = k, u2 = 1, against the same sum taken as (k·G) + Q by hand.
            let k = random_scalar(c);
            let mut one = [0u32; LIMBS];
            one[0] = 1;
            let both = double_mul(c, &k, &one, &key.table).unwrap();
            let k_g = double_mul(c, &k, &[0; LIMBS], &key.table).unwrap();
            assert_eq!(
                to_affine(f, &both),
                to_affine(f, &k_g.add_affine(f, &key.table[0]))
            );
        }
    }

    #[test]
    fn signatures_of_ring_verify_and_altered_ones_do_not() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let key = VerifyingKey::from_uncompressed(pair.public_key().as_ref()).unwrap();
        for len in [0usize, 1, 47, 48, 127, 128, 1000] {
            let msg = crate::testutil::random_vec(len);
            let sig = pair.sign(&rng, &msg).unwrap().as_ref().to_vec();
            assert!(key.verify(&msg, &sig), "{len}");
            for i in [0, 47, 48, 95] {
                let mut bad = sig.clone();
                bad[i] ^= 0x01;
                assert!(!key.verify(&msg, &bad), "{len} byte {i}");
            }
            assert!(!key.verify(&[&msg[..], b"x"].concat(), &sig));
            assert!(!key.verify(&msg, &sig[..95]));
            assert!(!key.verify(&msg, &[&sig[..], &[0]].concat()));
        }
        // r or s of 0 or n.
        let msg = b"m";
        let sig = pair.sign(&rng, msg).unwrap().as_ref().to_vec();
        for (at, value) in [(0, [0u8; 48]), (48, [0u8; 48]), (0, N), (48, N)] {
            let mut bad = sig.clone();
            bad[at..at + 48].copy_from_slice(&value);
            assert!(!key.verify(msg, &bad));
        }
        // A point off the curve gets no key.
        let mut off = pair.public_key().as_ref().to_vec();
        off[96] ^= 1;
        assert!(VerifyingKey::from_uncompressed(&off).is_none());
    }

    /// Native cost of one ES384 verification, ours against ring's.
    /// `cargo test --release -p shieldwall-jose es384_timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn es384_timing() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let key = VerifyingKey::from_uncompressed(&point).unwrap();
        let msg = b"eyJhbGciOiJFUzM4NCJ9.eyJzdWIiOiJhIn0";
        let sig = pair.sign(&rng, msg).unwrap().as_ref().to_vec();
        let rounds = 300;
        let time = |f: &dyn Fn() -> bool| crate::testutil::best_micros(rounds, f);
        let ours = time(&|| key.verify(msg, &sig));
        let ring = time(&|| {
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P384_SHA384_FIXED,
                &point,
            )
            .verify(msg, &sig)
            .is_ok()
        });
        let import = time(&|| VerifyingKey::from_uncompressed(&point).is_some());
        println!("ES384: ours {ours:.1} us, ring {ring:.1} us per verification; key import {import:.1} us");
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
