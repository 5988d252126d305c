//! ECDSA P-256 / SHA-256 verification (ES256), variable time.
//!
//! Why this exists: ring 0.17 verifies P-256 on wasm32 with two separate constant-time scalar
//! multiplications and a constant-time inversion, code written for private keys. Nothing in a
//! signature verification is secret (the key, the message and the signature are all public), so
//! this module trades constant time for speed:
//! - field elements are eight 32-bit limbs with 64-bit products (wasm32 multiplies 64-bit
//!   integers natively but has no 128-bit product), reduced with the NIST fast reduction that
//!   the special form of p allows;
//! - `u1·G + u2·Q` is computed in one pass (Shamir's trick) over width-w NAF digits of both
//!   scalars, adding precomputed odd multiples of G and of Q in affine form (mixed addition);
//! - the table for G is built once per VM on first use, the table for Q once per key at import
//!   ([`VerifyingKey::from_uncompressed`]), so a verification does no table work;
//! - `s⁻¹ mod n` is a binary extended Euclid, and `x(R) mod n = r` is checked without leaving
//!   Jacobian coordinates (`X = r·Z²`, and `(r + n)·Z²` when `r + n < p`).
//!
//! Every check of ECDSA verification stays: the signature is exactly 64 bytes, `r` and `s` lie in
//! `[1, n-1]`, the hash is reduced mod n, the sum point must not be the point at infinity, and
//! the public key is checked to be on the curve when its table is built. The point formulas
//! handle every special case (adding a point to itself or to its negation, the point at
//! infinity), so no input can produce a wrong answer, and no input can trap.

use std::sync::OnceLock;

use ring::digest;

/// A 256-bit number as eight 32-bit limbs, least significant first.
type Limbs = [u32; 8];

/// The field prime p = 2^256 - 2^224 + 2^192 + 2^96 - 1.
const P: Limbs = [
    0xffff_ffff,
    0xffff_ffff,
    0xffff_ffff,
    0,
    0,
    0,
    1,
    0xffff_ffff,
];

/// The group order n.
const N: Limbs = [
    0xfc63_2551,
    0xf3b9_cac2,
    0xa717_9e84,
    0xbce6_faad,
    0xffff_ffff,
    0xffff_ffff,
    0,
    0xffff_ffff,
];

/// The curve coefficient b (a = -3).
const B: Limbs = [
    0x27d2_604b,
    0x3bce_3c3e,
    0xcc53_b0f6,
    0x651d_06b0,
    0x7698_86bc,
    0xb3eb_bd55,
    0xaa3a_93e7,
    0x5ac6_35d8,
];

/// The base point G.
const GX: Limbs = [
    0xd898_c296,
    0xf4a1_3945,
    0x2deb_33a0,
    0x7703_7d81,
    0x63a4_40f2,
    0xf8bc_e6e5,
    0xe12c_4247,
    0x6b17_d1f2,
];
const GY: Limbs = [
    0x37bf_51f5,
    0xcbb6_4068,
    0x6b31_5ece,
    0x2bce_3357,
    0x7c0f_9e16,
    0x8ee7_eb4a,
    0xfe1a_7f9b,
    0x4fe3_42e2,
];

/// `-n⁻¹ mod 2^32`, for Montgomery reduction modulo n.
const N0: u32 = neg_inv_u32(N[0]);

/// Window width of the NAF digits for G, and the number of odd multiples of G in its table
/// (1G, 3G, ..., (2^(w-1) - 1)G).
const G_WINDOW: u32 = 7;
const G_TABLE: usize = 1 << (G_WINDOW - 2);
/// The same for the public key Q.
const Q_WINDOW: u32 = 5;
const Q_TABLE: usize = 1 << (Q_WINDOW - 2);

/// Digits of a width-w NAF of a number below 2^256: at most 257.
const NAF_LEN: usize = 257;

// NAF digits are stored as i8, so |digit| <= 2^(w-1) must fit.
const _: () = assert!(G_WINDOW <= 7 && Q_WINDOW <= 7 && Q_WINDOW >= 2);

const fn neg_inv_u32(a: u32) -> u32 {
    // Newton's iteration doubles the number of correct low bits each step; `a` is its own
    // inverse modulo 8 when odd, so five steps give 48 >= 32 bits.
    let mut x = a;
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u32.wrapping_sub(a.wrapping_mul(x)));
        i += 1;
    }
    x.wrapping_neg()
}

// ---------------------------------------------------------------------------------------------
// 256-bit integers
// ---------------------------------------------------------------------------------------------

fn limbs_from_be(bytes: &[u8; 32]) -> Limbs {
    let mut out = [0u32; 8];
    for (limb, chunk) in out.iter_mut().zip(bytes.rchunks_exact(4)) {
        *limb = <[u8; 4]>::try_from(chunk).map_or(0, u32::from_be_bytes);
    }
    out
}

#[cfg(test)]
fn limbs_to_be(a: &Limbs) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, limb) in out.rchunks_exact_mut(4).zip(a) {
        chunk.copy_from_slice(&limb.to_be_bytes());
    }
    out
}

/// `a + b`, with the carry out (0 or 1).
fn add_limbs(a: &Limbs, b: &Limbs) -> (Limbs, u32) {
    let mut out = [0u32; 8];
    let mut carry = 0u64;
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        let v = u64::from(x) + u64::from(y) + carry;
        *o = v as u32;
        carry = v >> 32;
    }
    (out, carry as u32)
}

/// `a - b` modulo 2^256, with the borrow out (0 or 1).
fn sub_limbs(a: &Limbs, b: &Limbs) -> (Limbs, u32) {
    let mut out = [0u32; 8];
    let mut borrow = 0u64;
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        let v = u64::from(x).wrapping_sub(u64::from(y)).wrapping_sub(borrow);
        *o = v as u32;
        borrow = (v >> 63) & 1;
    }
    (out, borrow as u32)
}

fn less_than(a: &Limbs, b: &Limbs) -> bool {
    sub_limbs(a, b).1 == 1
}

fn is_zero(a: &Limbs) -> bool {
    a.iter().all(|&x| x == 0)
}

fn is_one(a: &Limbs) -> bool {
    let [low, rest @ ..] = a;
    *low == 1 && rest.iter().all(|&x| x == 0)
}

fn shr1(a: &mut Limbs, top_bit: u32) {
    let mut carry = top_bit;
    for limb in a.iter_mut().rev() {
        let next = *limb & 1;
        *limb = (*limb >> 1) | (carry << 31);
        carry = next;
    }
}

/// The full 512-bit product, as sixteen limbs.
fn mul_wide(a: &Limbs, b: &Limbs) -> [u32; 16] {
    let mut t = [0u32; 16];
    for (i, &ai) in a.iter().enumerate() {
        let mut carry = 0u64;
        for (tk, &bj) in t.iter_mut().skip(i).zip(b) {
            // (2^32-1)^2 + 2 (2^32-1) < 2^64: no overflow.
            let v = u64::from(*tk) + u64::from(ai) * u64::from(bj) + carry;
            *tk = v as u32;
            carry = v >> 32;
        }
        if let Some(tk) = t.get_mut(i + 8) {
            *tk = carry as u32;
        }
    }
    t
}

// ---------------------------------------------------------------------------------------------
// The field GF(p)
// ---------------------------------------------------------------------------------------------

/// An element of GF(p), always fully reduced (below p), so equal values have equal limbs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Fe(Limbs);

impl Fe {
    const ZERO: Fe = Fe([0; 8]);
    const ONE: Fe = Fe([1, 0, 0, 0, 0, 0, 0, 0]);

    /// The element for a 32-byte big-endian value, if it is below p.
    fn from_be(bytes: &[u8; 32]) -> Option<Fe> {
        let limbs = limbs_from_be(bytes);
        less_than(&limbs, &P).then_some(Fe(limbs))
    }

    fn is_zero(&self) -> bool {
        is_zero(&self.0)
    }

    fn add(&self, other: &Fe) -> Fe {
        let (sum, carry) = add_limbs(&self.0, &other.0);
        if carry == 1 || !less_than(&sum, &P) {
            Fe(sub_limbs(&sum, &P).0)
        } else {
            Fe(sum)
        }
    }

    fn sub(&self, other: &Fe) -> Fe {
        let (diff, borrow) = sub_limbs(&self.0, &other.0);
        if borrow == 1 {
            Fe(add_limbs(&diff, &P).0)
        } else {
            Fe(diff)
        }
    }

    fn double(&self) -> Fe {
        self.add(self)
    }

    fn neg(&self) -> Fe {
        Fe::ZERO.sub(self)
    }

    fn mul(&self, other: &Fe) -> Fe {
        Fe(reduce_wide(&mul_wide(&self.0, &other.0)))
    }

    fn square(&self) -> Fe {
        self.mul(self)
    }

    /// `self^(p-2)`, the inverse of a non-zero element (zero maps to zero). Only used when
    /// tables are built, never per verification.
    fn invert(&self) -> Fe {
        let (exponent, _) = sub_limbs(&P, &[2, 0, 0, 0, 0, 0, 0, 0]);
        let mut acc = Fe::ONE;
        for limb in exponent.iter().rev() {
            for bit in (0..32).rev() {
                acc = acc.square();
                if (limb >> bit) & 1 == 1 {
                    acc = acc.mul(self);
                }
            }
        }
        acc
    }
}

/// Reduces a 512-bit product modulo p (the NIST fast reduction for P-256: the high half is
/// folded into the low half with 2^256 = 2^224 - 2^192 - 2^96 + 1 mod p), fully.
fn reduce_wide(c: &[u32; 16]) -> Limbs {
    let [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15] =
        (*c).map(i64::from);
    // s1 + 2 s2 + 2 s3 + s4 + s5 - s6 - s7 - s8 - s9, limb by limb; each sum is within ±2^35.
    let mut acc: [i64; 8] = [
        c0 + c8 + c9 - c11 - c12 - c13 - c14,
        c1 + c9 + c10 - c12 - c13 - c14 - c15,
        c2 + c10 + c11 - c13 - c14 - c15,
        c3 + 2 * (c11 + c12) + c13 - c15 - c8 - c9,
        c4 + 2 * (c12 + c13) + c14 - c9 - c10,
        c5 + 2 * (c13 + c14) + c15 - c10 - c11,
        c6 + 3 * c14 + 2 * c15 + c13 - c8 - c9,
        c7 + 3 * c15 + c8 - c10 - c11 - c12 - c13,
    ];
    let mut top = propagate(&mut acc);
    // The value is now top·2^256 + acc, with top in [-4, 6]. Fold top back in until nothing is
    // left above 2^256: one fold leaves top in {-1, 0, 1}, a second leaves 0.
    for _ in 0..4 {
        if top == 0 {
            break;
        }
        let [a0, _, _, a3, _, _, a6, a7] = &mut acc;
        *a0 += top;
        *a3 -= top;
        *a6 -= top;
        *a7 += top;
        top = propagate(&mut acc);
    }
    let limbs: Limbs = acc.map(|x| x as u32);
    if less_than(&limbs, &P) {
        limbs
    } else {
        sub_limbs(&limbs, &P).0
    }
}

/// Brings every accumulator into [0, 2^32), passing signed carries upwards; returns the carry
/// out of the top limb.
fn propagate(acc: &mut [i64; 8]) -> i64 {
    let mut carry = 0i64;
    for x in acc.iter_mut() {
        let v = *x + carry;
        *x = v & 0xffff_ffff;
        carry = v >> 32;
    }
    carry
}

// ---------------------------------------------------------------------------------------------
// Scalars modulo n
// ---------------------------------------------------------------------------------------------

/// The scalar for a 32-byte big-endian value, if it is in [1, n-1].
fn scalar_from_be(bytes: &[u8; 32]) -> Option<Limbs> {
    let limbs = limbs_from_be(bytes);
    (!is_zero(&limbs) && less_than(&limbs, &N)).then_some(limbs)
}

/// A 256-bit value reduced modulo n (one subtraction is enough: 2^256 < 2n).
fn scalar_reduce(a: &Limbs) -> Limbs {
    if less_than(a, &N) {
        *a
    } else {
        sub_limbs(a, &N).0
    }
}

fn scalar_sub(a: &Limbs, b: &Limbs) -> Limbs {
    let (diff, borrow) = sub_limbs(a, b);
    if borrow == 1 {
        add_limbs(&diff, &N).0
    } else {
        diff
    }
}

fn scalar_half(a: &mut Limbs) {
    if a.first().is_some_and(|low| low & 1 == 1) {
        let (sum, carry) = add_limbs(a, &N);
        *a = sum;
        shr1(a, carry);
    } else {
        shr1(a, 0);
    }
}

/// Montgomery product `a·b·2^-256 mod n`, for a, b below n.
fn scalar_mont_mul(a: &Limbs, b: &Limbs) -> Limbs {
    let wide = mul_wide(a, b);
    let mut t = [0u32; 17];
    for (dst, src) in t.iter_mut().zip(wide) {
        *dst = src;
    }
    for i in 0..8 {
        let Some(&ti) = t.get(i) else { break };
        let m = ti.wrapping_mul(N0);
        let mut carry = 0u64;
        for (tk, &nj) in t.iter_mut().skip(i).zip(&N) {
            let v = u64::from(*tk) + u64::from(m) * u64::from(nj) + carry;
            *tk = v as u32;
            carry = v >> 32;
        }
        for tk in t.iter_mut().skip(i + 8) {
            let v = u64::from(*tk) + carry;
            *tk = v as u32;
            carry = v >> 32;
        }
    }
    // t < 2n·2^256 before the divisions, so the result is below 2n: at most one subtraction.
    let mut out = [0u32; 8];
    for (dst, &src) in out.iter_mut().zip(t.iter().skip(8)) {
        *dst = src;
    }
    let top = t.get(16).copied().unwrap_or(0);
    if top != 0 || !less_than(&out, &N) {
        sub_limbs(&out, &N).0
    } else {
        out
    }
}

/// `a⁻¹·2^256 mod n` (the inverse in Montgomery form, so a Montgomery product with it gives a
/// plain product), for a in [1, n-1]; binary extended Euclid, variable time.
fn scalar_invert_mont(a: &Limbs) -> Option<Limbs> {
    if is_zero(a) || !less_than(a, &N) {
        return None;
    }
    // Invariants: a·x1 = u·2^256 and a·x2 = v·2^256 (mod n).
    let mut u = *a;
    let mut v = N;
    let mut x1 = sub_limbs(&[0; 8], &N).0; // 2^256 mod n
    let mut x2 = [0u32; 8];
    // Each step halves u or v, or subtracts (which makes the next step a halving): 2·512 steps
    // plus slack always suffice for 256-bit inputs.
    for _ in 0..1100 {
        if is_one(&u) {
            return Some(x1);
        }
        if is_one(&v) {
            return Some(x2);
        }
        if is_zero(&u) || is_zero(&v) {
            return None;
        }
        if u.first().is_some_and(|low| low & 1 == 0) {
            shr1(&mut u, 0);
            scalar_half(&mut x1);
        } else if v.first().is_some_and(|low| low & 1 == 0) {
            shr1(&mut v, 0);
            scalar_half(&mut x2);
        } else if less_than(&u, &v) {
            v = sub_limbs(&v, &u).0;
            x2 = scalar_sub(&x2, &x1);
        } else {
            u = sub_limbs(&u, &v).0;
            x1 = scalar_sub(&x1, &x2);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Points
// ---------------------------------------------------------------------------------------------

/// A finite point in affine coordinates.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Affine {
    x: Fe,
    y: Fe,
}

impl Affine {
    fn neg(&self) -> Affine {
        Affine {
            x: self.x,
            y: self.y.neg(),
        }
    }

    fn is_on_curve(&self) -> bool {
        // y² = x³ - 3x + b
        let rhs = self
            .x
            .square()
            .mul(&self.x)
            .sub(&self.x.double().add(&self.x))
            .add(&Fe(B));
        self.y.square() == rhs
    }
}

/// A point in Jacobian coordinates: (X/Z², Y/Z³), the point at infinity when Z = 0.
#[derive(Clone, Copy, Debug)]
struct Jacobian {
    x: Fe,
    y: Fe,
    z: Fe,
}

impl Jacobian {
    const INFINITY: Jacobian = Jacobian {
        x: Fe::ONE,
        y: Fe::ONE,
        z: Fe::ZERO,
    };

    fn from_affine(p: &Affine) -> Jacobian {
        Jacobian {
            x: p.x,
            y: p.y,
            z: Fe::ONE,
        }
    }

    fn is_infinity(&self) -> bool {
        self.z.is_zero()
    }

    /// 2P, "dbl-2001-b" (a = -3). Infinity maps to infinity (Z3 = 2·Y·Z), and there is no point
    /// of order 2 on this curve.
    fn double(&self) -> Jacobian {
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x.mul(&gamma);
        let t = self.x.sub(&delta).mul(&self.x.add(&delta));
        let alpha = t.double().add(&t);
        let beta4 = beta.double().double();
        let x3 = alpha.square().sub(&beta4.double());
        let z3 = self.y.add(&self.z).square().sub(&gamma).sub(&delta);
        let gamma2_8 = gamma.square().double().double().double();
        let y3 = alpha.mul(&beta4.sub(&x3)).sub(&gamma2_8);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// P + A for an affine A (mixed addition), with every special case: P at infinity, P = A
    /// (doubling), P = -A (infinity).
    fn add_affine(&self, a: &Affine) -> Jacobian {
        if self.is_infinity() {
            return Jacobian::from_affine(a);
        }
        let z1z1 = self.z.square();
        let u2 = a.x.mul(&z1z1);
        let s2 = a.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&self.x);
        let r = s2.sub(&self.y);
        if h.is_zero() {
            return if r.is_zero() {
                self.double()
            } else {
                Jacobian::INFINITY
            };
        }
        let hh = h.square();
        let hhh = hh.mul(&h);
        let v = self.x.mul(&hh);
        let x3 = r.square().sub(&hhh).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&self.y.mul(&hhh));
        let z3 = self.z.mul(&h);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// P1 + P2 in Jacobian coordinates, with every special case. Used to build tables.
    fn add(&self, other: &Jacobian) -> Jacobian {
        if self.is_infinity() {
            return *other;
        }
        if other.is_infinity() {
            return *self;
        }
        let z1z1 = self.z.square();
        let z2z2 = other.z.square();
        let u1 = self.x.mul(&z2z2);
        let u2 = other.x.mul(&z1z1);
        let s1 = self.y.mul(&other.z).mul(&z2z2);
        let s2 = other.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&u1);
        let r = s2.sub(&s1);
        if h.is_zero() {
            return if r.is_zero() {
                self.double()
            } else {
                Jacobian::INFINITY
            };
        }
        let hh = h.square();
        let hhh = hh.mul(&h);
        let v = u1.mul(&hh);
        let x3 = r.square().sub(&hhh).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&s1.mul(&hhh));
        let z3 = self.z.mul(&other.z).mul(&h);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    #[cfg(test)]
    fn to_affine(self) -> Option<Affine> {
        if self.is_infinity() {
            return None;
        }
        let zi = self.z.invert();
        let zi2 = zi.square();
        Some(Affine {
            x: self.x.mul(&zi2),
            y: self.y.mul(&zi2).mul(&zi),
        })
    }
}

/// The odd multiples P, 3P, 5P, ... of a finite point, in affine form. All of them are finite
/// (they are below the prime group order), so one shared inversion normalises them all.
fn odd_multiples<const K: usize>(p: &Affine) -> [Affine; K] {
    let twice = Jacobian::from_affine(p).double();
    let mut points = [Jacobian::from_affine(p); K];
    let mut prev = Jacobian::from_affine(p);
    for slot in points.iter_mut().skip(1) {
        prev = prev.add(&twice);
        *slot = prev;
    }
    // Batch inversion: prefix products of the Z coordinates, one inversion, then back.
    let mut prefix = [Fe::ONE; K];
    let mut acc = Fe::ONE;
    for (pre, point) in prefix.iter_mut().zip(&points) {
        *pre = acc;
        acc = acc.mul(&point.z);
    }
    let mut inv = acc.invert();
    let mut out = [*p; K];
    for ((slot, point), pre) in out.iter_mut().zip(&points).zip(&prefix).rev() {
        let zi = inv.mul(pre);
        inv = inv.mul(&point.z);
        let zi2 = zi.square();
        *slot = Affine {
            x: point.x.mul(&zi2),
            y: point.y.mul(&zi2).mul(&zi),
        };
    }
    out
}

fn g_table() -> &'static [Affine; G_TABLE] {
    static TABLE: OnceLock<[Affine; G_TABLE]> = OnceLock::new();
    TABLE.get_or_init(|| {
        odd_multiples(&Affine {
            x: Fe(GX),
            y: Fe(GY),
        })
    })
}

/// Width-w NAF of a scalar below n: digits in (-2^(w-1), 2^(w-1)), odd or zero, least
/// significant first, with at least w-1 zeros after each non-zero digit.
fn wnaf(k: &Limbs, w: u32) -> [i8; NAF_LEN] {
    let mut digits = [0i8; NAF_LEN];
    // One spare limb: subtracting a negative digit may carry past bit 255.
    let mut k9 = [0u32; 9];
    for (dst, &src) in k9.iter_mut().zip(k) {
        *dst = src;
    }
    let window = 1u32 << w;
    for digit in digits.iter_mut() {
        if k9.iter().all(|&x| x == 0) {
            break;
        }
        let [low, ..] = &mut k9;
        if *low & 1 == 1 {
            let m = *low & (window - 1);
            if m < window / 2 {
                // k -= m: only clears the low bits.
                *low -= m;
                *digit = m as i8;
            } else {
                // k += window - m: the digit is m - window, negative.
                let mut carry = u64::from(window - m);
                for limb in k9.iter_mut() {
                    let v = u64::from(*limb) + carry;
                    *limb = v as u32;
                    carry = v >> 32;
                }
                *digit = -((window - m) as i8);
            }
        }
        let mut carry = 0u32;
        for limb in k9.iter_mut().rev() {
            let next = *limb & 1;
            *limb = (*limb >> 1) | (carry << 31);
            carry = next;
        }
    }
    digits
}

/// The table entry for a non-zero NAF digit: `digit·P` from the odd multiples of P.
fn table_point<const K: usize>(table: &[Affine; K], digit: i8) -> Option<Affine> {
    let point = table.get(usize::from(digit.unsigned_abs() >> 1))?;
    Some(if digit < 0 { point.neg() } else { *point })
}

/// `u1·G + u2·Q` by interleaving the NAF digits of both scalars over one chain of doublings.
fn double_mul(u1: &Limbs, u2: &Limbs, q_table: &[Affine; Q_TABLE]) -> Jacobian {
    let g = g_table();
    let d1 = wnaf(u1, G_WINDOW);
    let d2 = wnaf(u2, Q_WINDOW);
    let top = d1
        .iter()
        .zip(&d2)
        .rposition(|(a, b)| *a != 0 || *b != 0)
        .unwrap_or(0);
    let mut acc = Jacobian::INFINITY;
    for (&a, &b) in d1.iter().zip(&d2).take(top + 1).rev() {
        acc = acc.double();
        if let Some(p) = (a != 0).then(|| table_point(g, a)).flatten() {
            acc = acc.add_affine(&p);
        }
        if let Some(p) = (b != 0).then(|| table_point(q_table, b)).flatten() {
            acc = acc.add_affine(&p);
        }
    }
    acc
}

// ---------------------------------------------------------------------------------------------
// Keys and verification
// ---------------------------------------------------------------------------------------------

/// A P-256 public key ready for verification: the odd multiples Q, 3Q, ..., 15Q in affine form.
pub(crate) struct VerifyingKey {
    table: [Affine; Q_TABLE],
}

impl VerifyingKey {
    /// Imports an uncompressed point `04 || x || y`: both coordinates below p, on the curve. The
    /// point at infinity has no such encoding.
    pub(crate) fn from_uncompressed(point: &[u8]) -> Option<VerifyingKey> {
        let (&tag, coords) = point.split_first()?;
        if tag != 0x04 || coords.len() != 64 {
            return None;
        }
        let (x, y) = coords.split_at(32);
        let q = Affine {
            x: Fe::from_be(x.try_into().ok()?)?,
            y: Fe::from_be(y.try_into().ok()?)?,
        };
        if !q.is_on_curve() {
            return None;
        }
        Some(VerifyingKey {
            table: odd_multiples(&q),
        })
    }

    /// Verifies an ES256 signature (`r || s`, 32 bytes each, big-endian) over `message`.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = <&[u8; 64]>::try_from(signature) else {
            return false;
        };
        let (r_bytes, s_bytes) = signature.split_at(32);
        let (Ok(r_bytes), Ok(s_bytes)) = (
            <&[u8; 32]>::try_from(r_bytes),
            <&[u8; 32]>::try_from(s_bytes),
        ) else {
            return false;
        };
        let (Some(r), Some(s)) = (scalar_from_be(r_bytes), scalar_from_be(s_bytes)) else {
            return false;
        };
        let digest = digest::digest(&digest::SHA256, message);
        let Ok(hash) = <&[u8; 32]>::try_from(digest.as_ref()) else {
            return false;
        };
        let e = scalar_reduce(&limbs_from_be(hash));
        let Some(w) = scalar_invert_mont(&s) else {
            return false;
        };
        let u1 = scalar_mont_mul(&e, &w);
        let u2 = scalar_mont_mul(&r, &w);
        let sum = double_mul(&u1, &u2, &self.table);
        if sum.is_infinity() {
            return false;
        }
        // x(R) = X/Z²; x(R) mod n = r means x(R) is r or r + n (the latter only when below p).
        let z2 = sum.z.square();
        if Fe(r).mul(&z2) == sum.x {
            return true;
        }
        let (r_plus_n, carry) = add_limbs(&r, &N);
        carry == 0 && less_than(&r_plus_n, &P) && Fe(r_plus_n).mul(&z2) == sum.x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::{SecureRandom, SystemRandom};
    use ring::signature::{self, EcdsaKeyPair, KeyPair};
    use std::cmp::Ordering;

    // ---- A naive reference: little-endian u32 digits, schoolbook product, bitwise remainder.

    fn big_cmp(a: &[u32], b: &[u32]) -> Ordering {
        let len = a.len().max(b.len());
        for i in (0..len).rev() {
            let (x, y) = (
                a.get(i).copied().unwrap_or(0),
                b.get(i).copied().unwrap_or(0),
            );
            if x != y {
                return x.cmp(&y);
            }
        }
        Ordering::Equal
    }

    fn big_sub(a: &mut [u32], b: &[u32]) {
        let mut borrow = 0i64;
        for (i, x) in a.iter_mut().enumerate() {
            let v = i64::from(*x) - i64::from(b.get(i).copied().unwrap_or(0)) - borrow;
            *x = v.rem_euclid(1 << 32) as u32;
            borrow = i64::from(v < 0);
        }
        assert_eq!(borrow, 0);
    }

    fn big_mul(a: &[u32], b: &[u32]) -> Vec<u32> {
        let mut out = vec![0u32; a.len() + b.len()];
        for (i, &x) in a.iter().enumerate() {
            let mut carry = 0u128;
            for (j, &y) in b.iter().enumerate() {
                let v = u128::from(out[i + j]) + u128::from(x) * u128::from(y) + carry;
                out[i + j] = v as u32;
                carry = v >> 32;
            }
            out[i + b.len()] = carry as u32;
        }
        out
    }

    /// a mod m, one bit at a time.
    fn big_rem(a: &[u32], m: &[u32]) -> Limbs {
        let mut r = vec![0u32; m.len() + 1];
        for i in (0..a.len() * 32).rev() {
            let bit = (a[i / 32] >> (i % 32)) & 1;
            let mut carry = bit;
            for d in r.iter_mut() {
                let next = *d >> 31;
                *d = (*d << 1) | carry;
                carry = next;
            }
            if big_cmp(&r, m) != Ordering::Less {
                big_sub(&mut r, m);
            }
        }
        r[..8].try_into().unwrap()
    }

    fn ref_mul(a: &Limbs, b: &Limbs, m: &Limbs) -> Limbs {
        big_rem(&big_mul(a, b), m)
    }

    fn ref_pow(a: &Limbs, e: &Limbs, m: &Limbs) -> Limbs {
        let mut acc = [1, 0, 0, 0, 0, 0, 0, 0];
        for i in (0..256).rev() {
            acc = ref_mul(&acc, &acc, m);
            if (e[i / 32] >> (i % 32)) & 1 == 1 {
                acc = ref_mul(&acc, a, m);
            }
        }
        acc
    }

    fn two_pow_256_mod(m: &Limbs) -> Limbs {
        let mut v = vec![0u32; 9];
        v[8] = 1;
        big_rem(&v, m)
    }

    fn random_bytes<const K: usize>() -> [u8; K] {
        let mut out = [0u8; K];
        SystemRandom::new().fill(&mut out).unwrap();
        out
    }

    /// Random values below m, with a bias towards the edges (all-ones limbs, small values).
    fn sample(m: &Limbs, count: usize) -> Vec<Limbs> {
        let m_minus = |k: u32| sub_limbs(m, &[k, 0, 0, 0, 0, 0, 0, 0]).0;
        let mut out = vec![
            [0; 8],
            [1, 0, 0, 0, 0, 0, 0, 0],
            [2, 0, 0, 0, 0, 0, 0, 0],
            m_minus(1),
            m_minus(2),
            [0, 0, 0, 0, 0, 0, 0, 0x8000_0000],
            [
                0xffff_ffff,
                0xffff_ffff,
                0xffff_ffff,
                0xffff_ffff,
                0,
                0,
                0,
                0,
            ],
            [0, 0, 0, 1, 0, 0, 0, 0],
        ];
        while out.len() < count {
            let mut v = limbs_from_be(&random_bytes::<32>());
            // Some values with whole limbs at 0 or all ones.
            let mask: [u8; 8] = random_bytes();
            for (limb, m) in v.iter_mut().zip(mask) {
                match m % 8 {
                    0 => *limb = 0,
                    1 => *limb = u32::MAX,
                    _ => {}
                }
            }
            if less_than(&v, m) {
                out.push(v);
            }
        }
        out
    }

    fn scalar_mul_reference(k: &Limbs, p: &Affine) -> Jacobian {
        // Plain double-and-add over the bits, independent of the NAF and the tables.
        let base = Jacobian::from_affine(p);
        let mut acc = Jacobian::INFINITY;
        for i in (0..256).rev() {
            acc = acc.double();
            if (k[i / 32] >> (i % 32)) & 1 == 1 {
                acc = acc.add(&base);
            }
        }
        acc
    }

    fn g() -> Affine {
        Affine {
            x: Fe(GX),
            y: Fe(GY),
        }
    }

    fn hex32(s: &str) -> [u8; 32] {
        let v: Vec<u8> = (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        v.try_into().unwrap()
    }

    fn same_point(a: &Jacobian, b: &Jacobian) -> bool {
        a.to_affine() == b.to_affine()
    }

    // ---- Constants

    #[test]
    fn constants() {
        assert_eq!(N[0].wrapping_mul(N0), u32::MAX, "N0 = -n^-1 mod 2^32");
        // p and n from their definitions.
        let mut p = vec![0u32; 9];
        p[8] = 1; // 2^256
        big_sub(&mut p, &[0, 0, 0, 0, 0, 0, 0, 1]); // - 2^224
        let mut p = {
            let mut with = p.clone();
            with[6] += 1; // + 2^192
            with[3] += 1; // + 2^96
            with
        };
        big_sub(&mut p, &[1]);
        assert_eq!(&p[..8], &P[..]);
        assert_eq!(p[8], 0);
        assert_eq!(
            limbs_from_be(&hex32(
                "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"
            )),
            N
        );
        assert!(g().is_on_curve());
        let mut off = g();
        off.y = off.y.add(&Fe::ONE);
        assert!(!off.is_on_curve());
        // Round trip of the byte conversion.
        let bytes = random_bytes::<32>();
        assert_eq!(limbs_to_be(&limbs_from_be(&bytes)), bytes);
        let mut one = [0u8; 32];
        one[31] = 1;
        assert_eq!(limbs_from_be(&one), [1, 0, 0, 0, 0, 0, 0, 0]);
    }

    // ---- Field

    #[test]
    fn field_arithmetic_matches_the_reference() {
        let values = sample(&P, 60);
        for a in &values {
            for b in values.iter().step_by(3) {
                let (fa, fb) = (Fe(*a), Fe(*b));
                assert_eq!(fa.mul(&fb).0, ref_mul(a, b, &P), "{a:x?} * {b:x?}");
                let (s, c) = add_limbs(a, b);
                let sum_ref = big_rem(&[&s[..], &[c]].concat(), &P);
                assert_eq!(fa.add(&fb).0, sum_ref);
                // a - b + b = a, and a - b is reduced.
                let d = fa.sub(&fb);
                assert!(less_than(&d.0, &P));
                assert_eq!(d.add(&fb), fa);
            }
            assert_eq!(Fe(*a).square().0, ref_mul(a, a, &P));
            assert_eq!(Fe(*a).neg().add(&Fe(*a)), Fe::ZERO);
        }
    }

    #[test]
    fn reduction_of_any_512_bit_value() {
        let edge = [
            [u32::MAX; 16],
            [0; 16],
            {
                let mut v = [0u32; 16];
                v[8..].copy_from_slice(&[u32::MAX; 8]);
                v
            },
            {
                let mut v = [0u32; 16];
                v[..8].copy_from_slice(&P);
                v
            },
            {
                // p^2 - 1 and p^2: the largest products of reduced values and one above.
                let p2 = big_mul(&P, &P);
                let mut v = [0u32; 16];
                v.copy_from_slice(&p2[..16]);
                v
            },
        ];
        let random = (0..200).map(|_| {
            let bytes: [u8; 64] = random_bytes();
            let mut v = [0u32; 16];
            for (limb, chunk) in v.iter_mut().zip(bytes.chunks_exact(4)) {
                *limb = u32::from_le_bytes(chunk.try_into().unwrap());
            }
            // Whole-limb patterns that push the signed sums to their extremes.
            for (i, limb) in v.iter_mut().enumerate() {
                match bytes[i] % 5 {
                    0 => *limb = 0,
                    1 => *limb = u32::MAX,
                    _ => {}
                }
            }
            v
        });
        for c in edge.into_iter().chain(random) {
            assert_eq!(reduce_wide(&c), big_rem(&c, &P), "{c:x?}");
        }
    }

    #[test]
    fn field_inversion() {
        for a in sample(&P, 20).iter().filter(|a| !is_zero(a)) {
            let inv = Fe(*a).invert();
            assert_eq!(inv.mul(&Fe(*a)), Fe::ONE);
            let exp = sub_limbs(&P, &[2, 0, 0, 0, 0, 0, 0, 0]).0;
            assert_eq!(inv.0, ref_pow(a, &exp, &P));
        }
        assert_eq!(Fe::ZERO.invert(), Fe::ZERO);
    }

    #[test]
    fn field_from_bytes_range() {
        assert!(Fe::from_be(&limbs_to_be(&P)).is_none());
        assert!(Fe::from_be(&[0xff; 32]).is_none());
        let p_minus_1 = sub_limbs(&P, &[1, 0, 0, 0, 0, 0, 0, 0]).0;
        assert_eq!(Fe::from_be(&limbs_to_be(&p_minus_1)), Some(Fe(p_minus_1)));
        assert_eq!(Fe::from_be(&[0; 32]), Some(Fe::ZERO));
    }

    // ---- Scalars

    #[test]
    fn scalar_range() {
        let n_bytes = limbs_to_be(&N);
        assert!(scalar_from_be(&[0; 32]).is_none());
        assert!(scalar_from_be(&n_bytes).is_none());
        assert!(scalar_from_be(&[0xff; 32]).is_none());
        let n_plus_1 = add_limbs(&N, &[1, 0, 0, 0, 0, 0, 0, 0]).0;
        assert!(scalar_from_be(&limbs_to_be(&n_plus_1)).is_none());
        let n_minus_1 = sub_limbs(&N, &[1, 0, 0, 0, 0, 0, 0, 0]).0;
        assert_eq!(scalar_from_be(&limbs_to_be(&n_minus_1)), Some(n_minus_1));
        let mut one = [0u8; 32];
        one[31] = 1;
        assert_eq!(scalar_from_be(&one), Some([1, 0, 0, 0, 0, 0, 0, 0]));
        // The hash reduction.
        assert_eq!(scalar_reduce(&N), [0; 8]);
        assert_eq!(scalar_reduce(&[u32::MAX; 8]), big_rem(&[u32::MAX; 8], &N));
        assert_eq!(scalar_reduce(&n_minus_1), n_minus_1);
    }

    #[test]
    fn scalar_arithmetic_matches_the_reference() {
        let r_mod_n = two_pow_256_mod(&N);
        let values = sample(&N, 40);
        for a in &values {
            for b in values.iter().step_by(5) {
                // mont(a, b) · 2^256 = a · b (mod n)
                let m = scalar_mont_mul(a, b);
                assert!(less_than(&m, &N));
                assert_eq!(
                    ref_mul(&m, &r_mod_n, &N),
                    ref_mul(a, b, &N),
                    "{a:x?} {b:x?}"
                );
            }
            match scalar_invert_mont(a) {
                None => assert!(is_zero(a)),
                Some(w) => {
                    assert!(less_than(&w, &N));
                    // a · w = 2^256 (mod n), and w / 2^256 is the Fermat inverse.
                    assert_eq!(ref_mul(a, &w, &N), r_mod_n, "{a:x?}");
                    let exp = sub_limbs(&N, &[2, 0, 0, 0, 0, 0, 0, 0]).0;
                    let plain = scalar_mont_mul(&w, &[1, 0, 0, 0, 0, 0, 0, 0]);
                    assert_eq!(plain, ref_pow(a, &exp, &N));
                }
            }
        }
        assert!(scalar_invert_mont(&N).is_none());
        assert!(scalar_invert_mont(&[u32::MAX; 8]).is_none());
    }

    // ---- Points

    #[test]
    fn known_multiples_of_g() {
        let two_g = Jacobian::from_affine(&g()).double().to_affine().unwrap();
        assert_eq!(
            two_g.x.0,
            limbs_from_be(&hex32(
                "7cf27b188d034f7e8a52380304b51ac3c08969e277f21b35a60b48fc47669978"
            ))
        );
        assert_eq!(
            two_g.y.0,
            limbs_from_be(&hex32(
                "07775510db8ed040293d9ac69f7430dbba7dade63ce982299e04b79d227873d1"
            ))
        );
        // n·G is the point at infinity, (n-1)·G = -G, both by the reference ladder and by the
        // table-driven double multiplication.
        assert!(scalar_mul_reference(&N, &g()).is_infinity());
        let n_minus_1 = sub_limbs(&N, &[1, 0, 0, 0, 0, 0, 0, 0]).0;
        let neg_g = scalar_mul_reference(&n_minus_1, &g());
        assert_eq!(neg_g.to_affine(), Some(g().neg()));
        let key = VerifyingKey::from_uncompressed(&encode(&g())).unwrap();
        let via_tables = double_mul(&n_minus_1, &[0; 8], &key.table);
        assert_eq!(via_tables.to_affine(), Some(g().neg()));
        // (n-1)·G + 1·G through the key's table: P + (-P) inside the loop's last addition.
        let sum = double_mul(&n_minus_1, &[1, 0, 0, 0, 0, 0, 0, 0], &key.table);
        assert!(sum.is_infinity());
        // And mixed: a·G + b·G with a + b = n.
        let a = sample(&N, 9)[8];
        let b = sub_limbs(&N, &a).0;
        assert!(double_mul(&a, &b, &key.table).is_infinity());
    }

    /// Checks ours against ring's key-pair consistency check: ring accepts (d, Q) only when
    /// Q = d·G.
    #[test]
    fn scalar_multiplication_agrees_with_ring() {
        let rng = SystemRandom::new();
        for d in sample(&N, 24).iter().filter(|d| !is_zero(d)) {
            let q = scalar_mul_reference(d, &g()).to_affine().unwrap();
            let pair = EcdsaKeyPair::from_private_key_and_public_key(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &limbs_to_be(d),
                &encode(&q),
                &rng,
            );
            assert!(pair.is_ok(), "d = {d:x?}");
            // The NAF path agrees with the plain ladder.
            let key = VerifyingKey::from_uncompressed(&encode(&g())).unwrap();
            let via_naf = double_mul(d, &[0; 8], &key.table);
            assert_eq!(via_naf.to_affine(), Some(q));
            let via_q_table = double_mul(&[0; 8], d, &key.table);
            assert_eq!(via_q_table.to_affine(), Some(q));
            // A wrong point is refused by ring: the check can fail.
            let wrong = Jacobian::from_affine(&q).double().to_affine().unwrap();
            assert!(EcdsaKeyPair::from_private_key_and_public_key(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &limbs_to_be(d),
                &encode(&wrong),
                &rng,
            )
            .is_err());
        }
    }

    fn encode(p: &Affine) -> Vec<u8> {
        [&[4u8][..], &limbs_to_be(&p.x.0), &limbs_to_be(&p.y.0)].concat()
    }

    #[test]
    fn tables_hold_the_odd_multiples() {
        let q = scalar_mul_reference(&sample(&N, 9)[8], &g())
            .to_affine()
            .unwrap();
        let key = VerifyingKey::from_uncompressed(&encode(&q)).unwrap();
        for (i, entry) in key.table.iter().enumerate() {
            let k = [2 * i as u32 + 1, 0, 0, 0, 0, 0, 0, 0];
            assert!(entry.is_on_curve());
            assert_eq!(
                Some(*entry),
                scalar_mul_reference(&k, &q).to_affine(),
                "{i}"
            );
        }
        for (i, entry) in g_table().iter().enumerate() {
            let k = [2 * i as u32 + 1, 0, 0, 0, 0, 0, 0, 0];
            assert_eq!(
                Some(*entry),
                scalar_mul_reference(&k, &g()).to_affine(),
                "{i}"
            );
        }
        assert_eq!(g_table().len(), 32);
        assert_eq!(key.table.len(), 8);
    }

    #[test]
    fn addition_special_cases() {
        let p = scalar_mul_reference(&sample(&N, 9)[8], &g())
            .to_affine()
            .unwrap();
        let jp = Jacobian::from_affine(&p);
        // The same point with another Z: (λ²X, λ³Y, λZ).
        let lambda = Fe(sample(&P, 9)[8]);
        let scaled = Jacobian {
            x: p.x.mul(&lambda.square()),
            y: p.y.mul(&lambda.square()).mul(&lambda),
            z: lambda,
        };
        assert!(same_point(&scaled, &jp));
        let doubled = jp.double();
        assert!(same_point(&scaled.add_affine(&p), &doubled));
        assert!(same_point(&scaled.add(&jp), &doubled));
        assert!(same_point(&jp.add(&scaled), &doubled));
        assert!(scaled.add_affine(&p.neg()).is_infinity());
        assert!(scaled.add(&Jacobian::from_affine(&p.neg())).is_infinity());
        assert!(same_point(&Jacobian::INFINITY.add_affine(&p), &jp));
        assert!(same_point(&Jacobian::INFINITY.add(&scaled), &jp));
        assert!(same_point(&scaled.add(&Jacobian::INFINITY), &jp));
        assert!(Jacobian::INFINITY.double().is_infinity());
        assert!(Jacobian::INFINITY.add(&Jacobian::INFINITY).is_infinity());
        // A generic sum: P + G, checked on the curve and against 2P - P style identities.
        let sum = jp.add_affine(&g()).to_affine().unwrap();
        assert!(sum.is_on_curve());
        assert_eq!(
            Jacobian::from_affine(&sum)
                .add_affine(&g().neg())
                .to_affine(),
            Some(p)
        );
        assert!(doubled.to_affine().unwrap().is_on_curve());
    }

    #[test]
    fn naf_digits() {
        for k in sample(&N, 50) {
            for w in [G_WINDOW, Q_WINDOW] {
                let digits = wnaf(&k, w);
                // Recompose: sum of d_i 2^i = k, evaluated modulo n with the reference.
                let mut acc = vec![0u32; 10];
                for &d in digits.iter().rev() {
                    // acc = 2 acc + d, kept as a non-negative integer (k >= 0 throughout).
                    let mut carry = 0u32;
                    for limb in acc.iter_mut() {
                        let next = *limb >> 31;
                        *limb = (*limb << 1) | carry;
                        carry = next;
                    }
                    let mag = [u32::from(d.unsigned_abs())];
                    if d >= 0 {
                        let mut c = u64::from(mag[0]);
                        for limb in acc.iter_mut() {
                            let v = u64::from(*limb) + c;
                            *limb = v as u32;
                            c = v >> 32;
                        }
                    } else {
                        big_sub(&mut acc, &mag);
                    }
                }
                assert_eq!(big_cmp(&acc, &k), Ordering::Equal, "{k:x?} w={w}");
                let bound = 1i16 << (w - 1);
                let mut gap = usize::MAX;
                for &d in &digits {
                    if d != 0 {
                        assert!(d % 2 != 0 && i16::from(d).abs() < bound);
                        assert!(gap >= (w - 1) as usize);
                        gap = 0;
                    } else {
                        gap = gap.saturating_add(1);
                    }
                }
            }
        }
    }

    #[test]
    fn public_key_import() {
        let good = encode(&g());
        assert!(VerifyingKey::from_uncompressed(&good).is_some());
        let mut off = good.clone();
        off[64] ^= 1;
        assert!(VerifyingKey::from_uncompressed(&off).is_none());
        let mut tag = good.clone();
        tag[0] = 3;
        assert!(VerifyingKey::from_uncompressed(&tag).is_none());
        assert!(VerifyingKey::from_uncompressed(&good[..64]).is_none());
        assert!(VerifyingKey::from_uncompressed(&[good.clone(), vec![0]].concat()).is_none());
        assert!(VerifyingKey::from_uncompressed(&[]).is_none());
        // A coordinate equal to p is not a field element.
        let mut big_x = good.clone();
        big_x[1..33].copy_from_slice(&limbs_to_be(&P));
        assert!(VerifyingKey::from_uncompressed(&big_x).is_none());
        // (0, 0) is not on the curve (b != 0).
        let mut zero = vec![4u8];
        zero.extend([0u8; 64]);
        assert!(VerifyingKey::from_uncompressed(&zero).is_none());
    }

    // ---- Signatures, differential against ring

    struct Signer {
        pair: EcdsaKeyPair,
        key: VerifyingKey,
    }

    fn signer() -> Signer {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let key = VerifyingKey::from_uncompressed(pair.public_key().as_ref()).unwrap();
        Signer { pair, key }
    }

    fn ring_verifies(s: &Signer, msg: &[u8], sig: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            s.pair.public_key().as_ref(),
        )
        .verify(msg, sig)
        .is_ok()
    }

    fn both(s: &Signer, msg: &[u8], sig: &[u8]) -> (bool, bool) {
        (s.key.verify(msg, sig), ring_verifies(s, msg, sig))
    }

    #[test]
    fn ring_signatures_verify_and_tampering_is_refused() {
        let rng = SystemRandom::new();
        for round in 0..40 {
            let s = signer();
            let len = usize::from(random_bytes::<1>()[0]) + round;
            let msg: Vec<u8> = (0..len).map(|i| (i * 7 + round) as u8).collect();
            let sig = s.pair.sign(&rng, &msg).unwrap().as_ref().to_vec();
            assert_eq!(both(&s, &msg, &sig), (true, true));

            // One flipped bit anywhere in r, s or the message.
            let pick: [u8; 2] = random_bytes();
            let mut bad = sig.clone();
            bad[usize::from(pick[0]) % 64] ^= 1 << (pick[1] % 8);
            assert_eq!(both(&s, &msg, &bad), (false, false));
            if !msg.is_empty() {
                let mut other = msg.clone();
                other[usize::from(pick[0]) % msg.len()] ^= 1 << (pick[1] % 8);
                assert_eq!(both(&s, &other, &sig), (false, false));
            }
            // Another key.
            let t = signer();
            assert_eq!(both(&t, &msg, &sig), (false, false));

            // s and n - s are both valid ECDSA signatures (no low-s rule in JWS).
            let s_val = limbs_from_be(sig[32..].try_into().unwrap());
            let high = sub_limbs(&N, &s_val).0;
            let flipped = [&sig[..32], &limbs_to_be(&high)[..]].concat();
            assert_eq!(both(&s, &msg, &flipped), (true, true));
        }
    }

    #[test]
    fn out_of_range_and_malformed_signatures_are_refused() {
        let rng = SystemRandom::new();
        let s = signer();
        let msg = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0";
        let sig = s.pair.sign(&rng, msg).unwrap().as_ref().to_vec();
        let (r, sv) = sig.split_at(32);
        let n = limbs_to_be(&N);
        let n_plus = |k: u32| limbs_to_be(&add_limbs(&N, &[k, 0, 0, 0, 0, 0, 0, 0]).0);
        let r_val = limbs_from_be(r.try_into().unwrap());
        let s_val = limbs_from_be(sv.try_into().unwrap());
        let r_plus_n = add_limbs(&r_val, &N);
        let s_plus_n = add_limbs(&s_val, &N);
        let mut cases: Vec<Vec<u8>> = vec![
            [&[0u8; 32][..], sv].concat(),
            [r, &[0u8; 32][..]].concat(),
            [&n[..], sv].concat(),
            [r, &n[..]].concat(),
            [&n_plus(1)[..], sv].concat(),
            [r, &n_plus(1)[..]].concat(),
            [&[0xff; 32][..], sv].concat(),
            [r, &[0xff; 32][..]].concat(),
            vec![0u8; 64],
            sig[..63].to_vec(),
            [&sig[..], &[0]].concat(),
            [&[0], &sig[..]].concat(),
            vec![],
        ];
        // r + n and s + n, when they fit in 32 bytes: same residues, but out of range.
        if r_plus_n.1 == 0 {
            cases.push([&limbs_to_be(&r_plus_n.0)[..], sv].concat());
        }
        if s_plus_n.1 == 0 {
            cases.push([r, &limbs_to_be(&s_plus_n.0)[..]].concat());
        }
        for (i, bad) in cases.iter().enumerate() {
            assert_eq!(both(&s, msg, bad), (false, false), "case {i}");
        }
        assert_eq!(both(&s, msg, &sig), (true, true));
    }

    /// Native timing, ours against ring: `cargo test --release -p jwt-auth p256::tests::timing
    /// -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn timing() {
        let rng = SystemRandom::new();
        let s = signer();
        let msg = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0";
        let sig = s.pair.sign(&rng, msg).unwrap().as_ref().to_vec();
        let rounds = 2000;
        let time = |f: &dyn Fn() -> bool| {
            let mut best = f64::MAX;
            for _ in 0..3 {
                let start = std::time::Instant::now();
                for _ in 0..rounds {
                    assert!(f());
                }
                best = best.min(start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds));
            }
            best
        };
        let ours = time(&|| s.key.verify(msg, &sig));
        let ring = time(&|| ring_verifies(&s, msg, &sig));
        let import =
            time(&|| VerifyingKey::from_uncompressed(s.pair.public_key().as_ref()).is_some());
        println!(
            "ES256 verify, µs: ours {ours:.1}, ring {ring:.1}; key import (table) {import:.1}"
        );
    }
}
