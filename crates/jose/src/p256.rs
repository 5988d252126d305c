//! ECDSA P-256 / SHA-256 verification (ES256), variable time.
//!
//! Why this exists: ring 0.17 verifies P-256 on wasm32 with two separate constant-time scalar
//! multiplications and a constant-time inversion, code written for private keys, and that made
//! ES256 the slowest signature the filter checks. Nothing in a signature verification is secret
//! (the key, the message and the signature are all public), so this module gives up constant
//! time for speed:
//! - field elements are eight 32-bit limbs with 64-bit products (wasm32 multiplies 64-bit
//!   integers natively but has no 128-bit product), reduced with the NIST fast reduction that
//!   the special form of p allows; the limb code is unrolled by hand because the crate is built
//!   for size, which leaves loops rolled;
//! - `u1·G + u2·Q` is one pass (Shamir's trick): each scalar is cut into sixteen 16-bit pieces,
//!   and the width-w NAF digits of all thirty-two pieces are added in from tables of odd
//!   multiples of `2^(16j)·G` and `2^(16j)·Q` in affine form (mixed additions) over one shared
//!   chain of 17 doublings (eight pieces of 32 bits took 33, four of 64 took 65: more, smaller
//!   pieces trade table memory for doublings);
//! - the tables of G are built once per VM on first use (64 KiB of memory, not in the module),
//!   those of Q once per key at import ([`VerifyingKey::from_uncompressed`], 32 KiB per key),
//!   so a verification does no table work;
//! - `s⁻¹ mod n` is Bernstein and Yang's divsteps, thirty at a time on signed 30-bit limbs
//!   (a binary extended Euclid took four times as long), and `x(R) mod n = r` is checked
//!   without leaving Jacobian coordinates (`X = r·Z²`, and `(r + n)·Z²` when `r + n < p`).
//!
//! Every check of ECDSA verification stays: the signature is exactly 64 bytes, `r` and `s` lie in
//! `[1, n-1]`, the hash is reduced mod n, the sum point must not be the point at infinity, and
//! the public key is checked to be on the curve when its tables are built. The point formulas
//! handle every special case (adding a point to itself or to its negation, the point at
//! infinity), so the answer is right for every input, and no input can trap.
//!
//! The tests check the arithmetic against a naive big-integer reference, scalar multiples
//! against ring's key-pair check, and signatures against ring's verifier; the Wycheproof ES256
//! vectors run through the public API.

use std::sync::OnceLock;

use crate::digest;

/// A 256-bit number as eight 32-bit limbs, least significant first.
type Limbs = [u32; 8];

/// Binds each limb of an array to a variable of its own, widened to `$t`. (`array::map` would
/// do, but stays a loop through memory in a build for size.)
macro_rules! widen {
    ([$($v:ident),*] = $limbs:expr, $t:ty) => {
        let [$($v),*] = $limbs;
        $(let $v = <$t>::from($v);)*
    };
}

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

/// Each scalar is cut into `PARTS` pieces of `PART_BITS` bits, and each point P has one table per
/// piece, of multiples of 2^(PART_BITS·j)·P. The pieces share one chain of doublings, so a
/// verification doubles `PART_BITS` times instead of 256.
const PARTS: usize = 16;
const PART_BITS: u32 = 16;
/// Digits of a width-w NAF of a piece: one more than its bits.
const NAF_LEN: usize = PART_BITS as usize + 1;

/// Window width of the NAF digits for G, and the number of odd multiples in each of its tables
/// (1, 3, ..., 2^(w-1) - 1 times the base).
const G_WINDOW: u32 = 8;
const G_TABLE: usize = 1 << (G_WINDOW - 2);
/// The same for the public key Q.
const Q_WINDOW: u32 = 7;
const Q_TABLE: usize = 1 << (Q_WINDOW - 2);

// NAF digits are stored as i8, so |digit| < 2^(w-1) must fit; pieces are halves of 32-bit limbs.
const _: () = assert!(G_WINDOW <= 8 && Q_WINDOW <= 8 && G_WINDOW >= 2 && Q_WINDOW >= 2);
const _: () = assert!(PARTS * PART_BITS as usize == 256 && PART_BITS == 16);

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

/// The full 512-bit product, as sixteen limbs (schoolbook, row by row, unrolled).
#[inline(always)]
fn mul_wide(a: &Limbs, b: &Limbs) -> [u32; 16] {
    widen!([a0, a1, a2, a3, a4, a5, a6, a7] = *a, u64);
    widen!([b0, b1, b2, b3, b4, b5, b6, b7] = *b, u64);
    // Each step is t + a·b + carry <= (2^32-1)^2 + 2(2^32-1) < 2^64.
    let v = a0 * b0;
    let t0 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a0 * b1 + c;
    let mut t1 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a0 * b2 + c;
    let mut t2 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a0 * b3 + c;
    let mut t3 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a0 * b4 + c;
    let mut t4 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a0 * b5 + c;
    let mut t5 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a0 * b6 + c;
    let mut t6 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a0 * b7 + c;
    let mut t7 = v & 0xffff_ffff;
    let c = v >> 32;
    let mut t8 = c;
    let v = t1 + a1 * b0;
    t1 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t2 + a1 * b1 + c;
    t2 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t3 + a1 * b2 + c;
    t3 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t4 + a1 * b3 + c;
    t4 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t5 + a1 * b4 + c;
    t5 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t6 + a1 * b5 + c;
    t6 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t7 + a1 * b6 + c;
    t7 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t8 + a1 * b7 + c;
    t8 = v & 0xffff_ffff;
    let c = v >> 32;
    let mut t9 = c;
    let v = t2 + a2 * b0;
    t2 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t3 + a2 * b1 + c;
    t3 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t4 + a2 * b2 + c;
    t4 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t5 + a2 * b3 + c;
    t5 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t6 + a2 * b4 + c;
    t6 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t7 + a2 * b5 + c;
    t7 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t8 + a2 * b6 + c;
    t8 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t9 + a2 * b7 + c;
    t9 = v & 0xffff_ffff;
    let c = v >> 32;
    let mut t10 = c;
    let v = t3 + a3 * b0;
    t3 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t4 + a3 * b1 + c;
    t4 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t5 + a3 * b2 + c;
    t5 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t6 + a3 * b3 + c;
    t6 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t7 + a3 * b4 + c;
    t7 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t8 + a3 * b5 + c;
    t8 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t9 + a3 * b6 + c;
    t9 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t10 + a3 * b7 + c;
    t10 = v & 0xffff_ffff;
    let c = v >> 32;
    let mut t11 = c;
    let v = t4 + a4 * b0;
    t4 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t5 + a4 * b1 + c;
    t5 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t6 + a4 * b2 + c;
    t6 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t7 + a4 * b3 + c;
    t7 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t8 + a4 * b4 + c;
    t8 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t9 + a4 * b5 + c;
    t9 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t10 + a4 * b6 + c;
    t10 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t11 + a4 * b7 + c;
    t11 = v & 0xffff_ffff;
    let c = v >> 32;
    let mut t12 = c;
    let v = t5 + a5 * b0;
    t5 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t6 + a5 * b1 + c;
    t6 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t7 + a5 * b2 + c;
    t7 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t8 + a5 * b3 + c;
    t8 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t9 + a5 * b4 + c;
    t9 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t10 + a5 * b5 + c;
    t10 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t11 + a5 * b6 + c;
    t11 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t12 + a5 * b7 + c;
    t12 = v & 0xffff_ffff;
    let c = v >> 32;
    let mut t13 = c;
    let v = t6 + a6 * b0;
    t6 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t7 + a6 * b1 + c;
    t7 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t8 + a6 * b2 + c;
    t8 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t9 + a6 * b3 + c;
    t9 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t10 + a6 * b4 + c;
    t10 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t11 + a6 * b5 + c;
    t11 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t12 + a6 * b6 + c;
    t12 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t13 + a6 * b7 + c;
    t13 = v & 0xffff_ffff;
    let c = v >> 32;
    let mut t14 = c;
    let v = t7 + a7 * b0;
    t7 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t8 + a7 * b1 + c;
    t8 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t9 + a7 * b2 + c;
    t9 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t10 + a7 * b3 + c;
    t10 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t11 + a7 * b4 + c;
    t11 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t12 + a7 * b5 + c;
    t12 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t13 + a7 * b6 + c;
    t13 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t14 + a7 * b7 + c;
    t14 = v & 0xffff_ffff;
    let c = v >> 32;
    let t15 = c;
    [
        t0 as u32, t1 as u32, t2 as u32, t3 as u32, t4 as u32, t5 as u32, t6 as u32, t7 as u32,
        t8 as u32, t9 as u32, t10 as u32, t11 as u32, t12 as u32, t13 as u32, t14 as u32,
        t15 as u32,
    ]
}

/// The full 512-bit square: the products a_i·a_j (i < j) once, doubled, plus the squares.
#[inline(always)]
fn sqr_wide(a: &Limbs) -> [u32; 16] {
    widen!([a0, a1, a2, a3, a4, a5, a6, a7] = *a, u64);
    let t0 = 0u64;
    let v = a0 * a1;
    let mut t1 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a0 * a2 + c;
    let mut t2 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a0 * a3 + c;
    let mut t3 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a0 * a4 + c;
    let mut t4 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a0 * a5 + c;
    let mut t5 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a0 * a6 + c;
    let mut t6 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a0 * a7 + c;
    let mut t7 = v & 0xffff_ffff;
    let c = v >> 32;
    let mut t8 = c;
    let v = t3 + a1 * a2;
    t3 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t4 + a1 * a3 + c;
    t4 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t5 + a1 * a4 + c;
    t5 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t6 + a1 * a5 + c;
    t6 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t7 + a1 * a6 + c;
    t7 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t8 + a1 * a7 + c;
    t8 = v & 0xffff_ffff;
    let c = v >> 32;
    let mut t9 = c;
    let v = t5 + a2 * a3;
    t5 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t6 + a2 * a4 + c;
    t6 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t7 + a2 * a5 + c;
    t7 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t8 + a2 * a6 + c;
    t8 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t9 + a2 * a7 + c;
    t9 = v & 0xffff_ffff;
    let c = v >> 32;
    let mut t10 = c;
    let v = t7 + a3 * a4;
    t7 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t8 + a3 * a5 + c;
    t8 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t9 + a3 * a6 + c;
    t9 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t10 + a3 * a7 + c;
    t10 = v & 0xffff_ffff;
    let c = v >> 32;
    let mut t11 = c;
    let v = t9 + a4 * a5;
    t9 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t10 + a4 * a6 + c;
    t10 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t11 + a4 * a7 + c;
    t11 = v & 0xffff_ffff;
    let c = v >> 32;
    let mut t12 = c;
    let v = t11 + a5 * a6;
    t11 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = t12 + a5 * a7 + c;
    t12 = v & 0xffff_ffff;
    let c = v >> 32;
    let mut t13 = c;
    let v = t13 + a6 * a7;
    t13 = v & 0xffff_ffff;
    let c = v >> 32;
    let mut t14 = c;
    let mut t15 = 0u64;
    // Double (t < 2^511, so nothing is lost), then add the squares a_i² at 2i.
    t15 = ((t15 << 1) | (t14 >> 31)) & 0xffff_ffff;
    t14 = ((t14 << 1) | (t13 >> 31)) & 0xffff_ffff;
    t13 = ((t13 << 1) | (t12 >> 31)) & 0xffff_ffff;
    t12 = ((t12 << 1) | (t11 >> 31)) & 0xffff_ffff;
    t11 = ((t11 << 1) | (t10 >> 31)) & 0xffff_ffff;
    t10 = ((t10 << 1) | (t9 >> 31)) & 0xffff_ffff;
    t9 = ((t9 << 1) | (t8 >> 31)) & 0xffff_ffff;
    t8 = ((t8 << 1) | (t7 >> 31)) & 0xffff_ffff;
    t7 = ((t7 << 1) | (t6 >> 31)) & 0xffff_ffff;
    t6 = ((t6 << 1) | (t5 >> 31)) & 0xffff_ffff;
    t5 = ((t5 << 1) | (t4 >> 31)) & 0xffff_ffff;
    t4 = ((t4 << 1) | (t3 >> 31)) & 0xffff_ffff;
    t3 = ((t3 << 1) | (t2 >> 31)) & 0xffff_ffff;
    t2 = ((t2 << 1) | (t1 >> 31)) & 0xffff_ffff;
    t1 = ((t1 << 1) | (t0 >> 31)) & 0xffff_ffff;
    let t0 = (t0 << 1) & 0xffff_ffff;
    let mut c = 0u64;
    let s = a0 * a0;
    let v = t0 + (s & 0xffff_ffff) + c;
    let e0 = v & 0xffff_ffff;
    let v = t1 + (s >> 32) + (v >> 32);
    t1 = v & 0xffff_ffff;
    c = v >> 32;
    let s = a1 * a1;
    let v = t2 + (s & 0xffff_ffff) + c;
    let e2 = v & 0xffff_ffff;
    let v = t3 + (s >> 32) + (v >> 32);
    t3 = v & 0xffff_ffff;
    c = v >> 32;
    let s = a2 * a2;
    let v = t4 + (s & 0xffff_ffff) + c;
    let e4 = v & 0xffff_ffff;
    let v = t5 + (s >> 32) + (v >> 32);
    t5 = v & 0xffff_ffff;
    c = v >> 32;
    let s = a3 * a3;
    let v = t6 + (s & 0xffff_ffff) + c;
    let e6 = v & 0xffff_ffff;
    let v = t7 + (s >> 32) + (v >> 32);
    t7 = v & 0xffff_ffff;
    c = v >> 32;
    let s = a4 * a4;
    let v = t8 + (s & 0xffff_ffff) + c;
    let e8 = v & 0xffff_ffff;
    let v = t9 + (s >> 32) + (v >> 32);
    t9 = v & 0xffff_ffff;
    c = v >> 32;
    let s = a5 * a5;
    let v = t10 + (s & 0xffff_ffff) + c;
    let e10 = v & 0xffff_ffff;
    let v = t11 + (s >> 32) + (v >> 32);
    t11 = v & 0xffff_ffff;
    c = v >> 32;
    let s = a6 * a6;
    let v = t12 + (s & 0xffff_ffff) + c;
    let e12 = v & 0xffff_ffff;
    let v = t13 + (s >> 32) + (v >> 32);
    t13 = v & 0xffff_ffff;
    c = v >> 32;
    let s = a7 * a7;
    let v = t14 + (s & 0xffff_ffff) + c;
    let e14 = v & 0xffff_ffff;
    let v = t15 + (s >> 32) + (v >> 32);
    t15 = v & 0xffff_ffff;
    c = v >> 32;
    let _ = c;
    [
        e0 as u32, t1 as u32, e2 as u32, t3 as u32, e4 as u32, t5 as u32, e6 as u32, t7 as u32,
        e8 as u32, t9 as u32, e10 as u32, t11 as u32, e12 as u32, t13 as u32, e14 as u32,
        t15 as u32,
    ]
}

/// `a + b mod p` for a, b below p.
#[inline(always)]
fn fe_add(a: &Limbs, b: &Limbs) -> Limbs {
    widen!([a0, a1, a2, a3, a4, a5, a6, a7] = *a, i64);
    widen!([b0, b1, b2, b3, b4, b5, b6, b7] = *b, i64);
    let v = a0 + b0;
    let s0 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a1 + b1 + c;
    let s1 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a2 + b2 + c;
    let s2 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a3 + b3 + c;
    let s3 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a4 + b4 + c;
    let s4 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a5 + b5 + c;
    let s5 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a6 + b6 + c;
    let s6 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a7 + b7 + c;
    let s7 = v & 0xffff_ffff;
    let c = v >> 32;
    let carry = c;
    // s + carry·2^256 - p: keep it unless it is negative.
    let v = s0 - 0xffff_ffff;
    let t0 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = s1 - 0xffff_ffff + c;
    let t1 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = s2 - 0xffff_ffff + c;
    let t2 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = s3 + c;
    let t3 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = s4 + c;
    let t4 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = s5 + c;
    let t5 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = s6 - 1 + c;
    let t6 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = s7 - 0xffff_ffff + c;
    let t7 = v & 0xffff_ffff;
    let c = v >> 32;
    let borrow = c;
    // Branch-free: the choice is unpredictable. keep = all ones when s - p is kept.
    let keep = !((carry + borrow) >> 63);
    [
        (s0 ^ ((s0 ^ t0) & keep)) as u32,
        (s1 ^ ((s1 ^ t1) & keep)) as u32,
        (s2 ^ ((s2 ^ t2) & keep)) as u32,
        (s3 ^ ((s3 ^ t3) & keep)) as u32,
        (s4 ^ ((s4 ^ t4) & keep)) as u32,
        (s5 ^ ((s5 ^ t5) & keep)) as u32,
        (s6 ^ ((s6 ^ t6) & keep)) as u32,
        (s7 ^ ((s7 ^ t7) & keep)) as u32,
    ]
}

/// `a - b mod p` for a, b below p.
#[inline(always)]
fn fe_sub(a: &Limbs, b: &Limbs) -> Limbs {
    widen!([a0, a1, a2, a3, a4, a5, a6, a7] = *a, i64);
    widen!([b0, b1, b2, b3, b4, b5, b6, b7] = *b, i64);
    let v = a0 - b0;
    let d0 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a1 - b1 + c;
    let d1 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a2 - b2 + c;
    let d2 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a3 - b3 + c;
    let d3 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a4 - b4 + c;
    let d4 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a5 - b5 + c;
    let d5 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a6 - b6 + c;
    let d6 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a7 - b7 + c;
    let d7 = v & 0xffff_ffff;
    let c = v >> 32;
    let borrow = c;
    // Branch-free: add p when the difference went negative (borrow = -1).
    let mask = borrow & 0xffff_ffff;
    let v = d0 + mask;
    let t0 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = d1 + mask + c;
    let t1 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = d2 + mask + c;
    let t2 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = d3 + c;
    let t3 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = d4 + c;
    let t4 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = d5 + c;
    let t5 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = d6 + (mask & 1) + c;
    let t6 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = d7 + mask + c;
    let t7 = v & 0xffff_ffff;
    let c = v >> 32;
    let _carry = c;
    [
        t0 as u32, t1 as u32, t2 as u32, t3 as u32, t4 as u32, t5 as u32, t6 as u32, t7 as u32,
    ]
}

/// Adds `top·2^256 mod p = top·(2^224 - 2^192 - 2^96 + 1)` to the limbs and propagates; returns
/// the new carry out of the top limb.
#[inline(always)]
fn fold(acc: &mut [i64; 8], top: i64) -> i64 {
    let [a0, _, _, a3, _, _, a6, a7] = acc;
    *a0 += top;
    *a3 -= top;
    *a6 -= top;
    *a7 += top;
    propagate(acc)
}

/// Brings every accumulator into [0, 2^32), passing signed carries upwards; returns the carry
/// out of the top limb.
#[inline(always)]
fn propagate(acc: &mut [i64; 8]) -> i64 {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = *acc;
    let v = a0;
    let r0 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a1 + c;
    let r1 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a2 + c;
    let r2 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a3 + c;
    let r3 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a4 + c;
    let r4 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a5 + c;
    let r5 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a6 + c;
    let r6 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a7 + c;
    let r7 = v & 0xffff_ffff;
    let c = v >> 32;
    let carry = c;
    *acc = [r0, r1, r2, r3, r4, r5, r6, r7];
    carry
}

/// `a mod p` for any a below 2^256 (at most one subtraction, as 2^256 < 2p).
#[inline(always)]
fn fe_canonical(a: &[i64; 8]) -> Limbs {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = *a;
    let v = a0 - 0xffff_ffff;
    let t0 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a1 - 0xffff_ffff + c;
    let t1 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a2 - 0xffff_ffff + c;
    let t2 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a3 + c;
    let t3 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a4 + c;
    let t4 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a5 + c;
    let t5 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a6 - 1 + c;
    let t6 = v & 0xffff_ffff;
    let c = v >> 32;
    let v = a7 - 0xffff_ffff + c;
    let t7 = v & 0xffff_ffff;
    let c = v >> 32;
    let borrow = c;
    if borrow == 0 {
        [
            t0 as u32, t1 as u32, t2 as u32, t3 as u32, t4 as u32, t5 as u32, t6 as u32, t7 as u32,
        ]
    } else {
        [
            a0 as u32, a1 as u32, a2 as u32, a3 as u32, a4 as u32, a5 as u32, a6 as u32, a7 as u32,
        ]
    }
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
        Fe(fe_add(&self.0, &other.0))
    }

    fn sub(&self, other: &Fe) -> Fe {
        Fe(fe_sub(&self.0, &other.0))
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
        Fe(reduce_wide(&sqr_wide(&self.0)))
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
#[inline(always)]
fn reduce_wide(c: &[u32; 16]) -> Limbs {
    let (mut acc, top) = solinas(c);
    // Fold top back in twice, without branches (whether a fold is needed is unpredictable):
    // the first fold leaves a top in {-1, 0, 1}, the second leaves 0 (see the tests).
    let top = fold(&mut acc, top);
    fold(&mut acc, top);
    fe_canonical(&acc)
}

/// s1 + 2 s2 + 2 s3 + s4 + s5 - s6 - s7 - s8 - s9 of the NIST reduction as `top·2^256 + acc`,
/// acc in 32-bit limbs, top in [-4, 6].
#[inline(always)]
fn solinas(c: &[u32; 16]) -> ([i64; 8], i64) {
    widen!(
        [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15] = *c,
        i64
    );
    // Limb by limb; each sum is within ±2^35.
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
    let top = propagate(&mut acc);
    (acc, top)
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

// The inversion of s: Bernstein and Yang's divsteps ("Fast constant-time gcd computation and
// modular inversion", 2019), in the variable-time form (every input of a verification is
// public). Values are nine signed limbs of 30 bits, so that the 2×2 matrix of thirty divsteps,
// whose entries fit 31 bits, applies to them with 64-bit products.

/// `Σ limb_i·2^(30i)`. Normalised: limbs 0..8 in [0, 2^30), the top limb carries the sign.
type Signed30 = [i32; 9];
const MASK30: i64 = (1 << 30) - 1;
/// Thirty divsteps per matrix.
const BATCH: u32 = 30;
/// 741 divsteps always reach g = 0 for 256-bit inputs (the paper's bound, (49·256 + 57)/17):
/// 25 batches of 30.
const MAX_BATCHES: usize = 25;
/// n⁻¹ mod 2^30 (N0 is -n⁻¹ mod 2^32).
const N_INV30: i64 = (N0.wrapping_neg() as i64) & MASK30;

fn to_signed30(a: &Limbs) -> Signed30 {
    let mut out = [0i32; 9];
    for (i, limb) in out.iter_mut().enumerate() {
        let bit = 30 * i;
        let (word, shift) = (bit / 32, bit % 32);
        let lo = u64::from(a.get(word).copied().unwrap_or(0));
        let hi = u64::from(a.get(word + 1).copied().unwrap_or(0));
        *limb = (((lo | (hi << 32)) >> shift) & MASK30 as u64) as i32;
    }
    out
}

/// The 32-bit limbs of a normalised non-negative value below 2^256.
fn from_signed30(a: &Signed30) -> Limbs {
    let mut out = [0u32; 8];
    let mut acc = 0u64;
    let mut bits = 0u32;
    let mut limbs = out.iter_mut();
    for &l in a {
        acc |= (l as u64 & MASK30 as u64) << bits;
        bits += 30;
        while bits >= 32 {
            if let Some(o) = limbs.next() {
                *o = acc as u32;
            }
            acc >>= 32;
            bits -= 32;
        }
    }
    out
}

/// Thirty divsteps on the low bits of f (odd) and g, with eta = -delta. Returns the matrix
/// (u, v, q, r) with 2^30·f' = u·f + v·g and 2^30·g' = q·f + r·g; |u| + |v| and |q| + |r| are
/// at most 2^30.
fn divsteps(eta: &mut i32, f: u32, g: u32) -> (i64, i64, i64, i64) {
    let (mut u, mut v, mut q, mut r) = (1i32, 0i32, 0i32, 1i32);
    let (mut f, mut g) = (f, g);
    let mut left = BATCH;
    loop {
        // The even steps at once: g halves, f's row doubles, eta falls by one each.
        let zeros = (g | (u32::MAX << left)).trailing_zeros();
        g >>= zeros;
        u <<= zeros;
        v <<= zeros;
        *eta -= zeros as i32;
        left -= zeros;
        if left == 0 {
            break;
        }
        // g is odd. With delta > 0 the divstep swaps: (f, g) becomes (g, -f).
        if *eta < 0 {
            *eta = -*eta;
            (f, g) = (g, f.wrapping_neg());
            (u, v, q, r) = (q, r, -u, -v);
        }
        // g + f is even: the halving is the next round's first zero.
        g = g.wrapping_add(f);
        q += u;
        r += v;
    }
    (i64::from(u), i64::from(v), i64::from(q), i64::from(r))
}

/// `(f, g) ← (u·f + v·g, q·f + r·g) / 2^30`, exact divisions. |f|, |g| ≤ n throughout, so
/// every partial sum stays below 2^62.
fn update_fg(f: &mut Signed30, g: &mut Signed30, (u, v, q, r): (i64, i64, i64, i64)) {
    let (fin, gin) = (*f, *g);
    let ([f0, ..], [g0, ..]) = (fin, gin);
    let (f0, g0) = (i64::from(f0), i64::from(g0));
    let mut cf = (u * f0 + v * g0) >> 30;
    let mut cg = (q * f0 + r * g0) >> 30;
    let limbs = f.iter_mut().zip(g.iter_mut());
    for ((fo, go), (&fi, &gi)) in limbs.zip(fin.iter().zip(&gin).skip(1)) {
        let (fi, gi) = (i64::from(fi), i64::from(gi));
        cf += u * fi + v * gi;
        cg += q * fi + r * gi;
        *fo = (cf & MASK30) as i32;
        *go = (cg & MASK30) as i32;
        cf >>= 30;
        cg >>= 30;
    }
    if let (Some(ft), Some(gt)) = (f.last_mut(), g.last_mut()) {
        *ft = cf as i32;
        *gt = cg as i32;
    }
}

/// `(d, e) ← (u·d + v·e, q·d + r·e) / 2^30 mod n`, for d, e in [0, n) and back in [0, n). The
/// division adds the multiple of n that clears the low 30 bits; the result lies in (-n, 2n)
/// (|u| + |v| ≤ 2^30), and one addition or subtraction of n brings it into range.
fn update_de(
    d: &mut Signed30,
    e: &mut Signed30,
    (u, v, q, r): (i64, i64, i64, i64),
    n30: &Signed30,
) {
    let (din, ein) = (*d, *e);
    let ([d0, ..], [e0, ..], [n0, ..]) = (din, ein, *n30);
    let (d0, e0, n0) = (i64::from(d0), i64::from(e0), i64::from(n0));
    let cd = u * d0 + v * e0;
    let ce = q * d0 + r * e0;
    let md = cd.wrapping_neg().wrapping_mul(N_INV30) & MASK30;
    let me = ce.wrapping_neg().wrapping_mul(N_INV30) & MASK30;
    let mut cd = (cd + md * n0) >> 30;
    let mut ce = (ce + me * n0) >> 30;
    let limbs = d.iter_mut().zip(e.iter_mut());
    let inputs = din.iter().zip(&ein).zip(n30).skip(1);
    for ((dout, eout), ((&di, &ei), &ni)) in limbs.zip(inputs) {
        let (di, ei, ni) = (i64::from(di), i64::from(ei), i64::from(ni));
        cd += u * di + v * ei + md * ni;
        ce += q * di + r * ei + me * ni;
        *dout = (cd & MASK30) as i32;
        *eout = (ce & MASK30) as i32;
        cd >>= 30;
        ce >>= 30;
    }
    if let (Some(dt), Some(et)) = (d.last_mut(), e.last_mut()) {
        *dt = cd as i32;
        *et = ce as i32;
    }
    into_range(d, n30);
    into_range(e, n30);
}

/// A normalised value in (-n, 2n) brought into [0, n).
fn into_range(a: &mut Signed30, n30: &Signed30) {
    let negative = a.last().is_some_and(|&top| top < 0);
    if negative {
        add_signed30(a, n30, 1);
    } else {
        // The first limb from the top where they differ decides (limbs below the top are
        // normalised, so the comparison is the numbers').
        let below = a.iter().rev().zip(n30.iter().rev()).find(|(x, y)| x != y);
        if below.is_none_or(|(x, y)| x > y) {
            add_signed30(a, n30, -1);
        }
    }
}

/// `a ← a + sign·b`, normalised.
fn add_signed30(a: &mut Signed30, b: &Signed30, sign: i64) {
    let mut c = 0i64;
    for (x, &y) in a.iter_mut().zip(b) {
        c += i64::from(*x) + sign * i64::from(y);
        *x = (c & MASK30) as i32;
        c >>= 30;
    }
    // The carry out of the top limb is its sign: put it back.
    if let Some(top) = a.last_mut() {
        *top = (i64::from(*top) | (c << 30)) as i32;
    }
}

/// `a⁻¹·2^256 mod n` (the inverse in Montgomery form, so a Montgomery product with it gives a
/// plain product), for a in [1, n-1]. Invariants: f·2^256 = d·a and g·2^256 = e·a (mod n);
/// the divsteps take (f, g) from (n, a) to (±1, 0).
fn scalar_invert_mont(a: &Limbs) -> Option<Limbs> {
    if is_zero(a) || !less_than(a, &N) {
        return None;
    }
    let n30 = to_signed30(&N);
    let mut f = n30;
    let mut g = to_signed30(a);
    let mut d = [0i32; 9];
    let mut e = to_signed30(&sub_limbs(&[0; 8], &N).0); // 2^256 mod n
    let mut eta = -1i32;
    for _ in 0..MAX_BATCHES {
        let ([f0, ..], [g0, ..]) = (f, g);
        let t = divsteps(&mut eta, f0 as u32, g0 as u32);
        update_de(&mut d, &mut e, t, &n30);
        update_fg(&mut f, &mut g, t);
        if g == [0; 9] {
            let one = to_signed30(&[1, 0, 0, 0, 0, 0, 0, 0]);
            let mut minus_one = [MASK30 as i32; 9];
            if let Some(top) = minus_one.last_mut() {
                *top = -1;
            }
            return if f == one {
                Some(from_signed30(&d))
            } else if f == minus_one && d != [0; 9] {
                let mut neg = n30;
                add_signed30(&mut neg, &d, -1);
                Some(from_signed30(&neg))
            } else {
                // gcd(a, n) ≠ 1: not for a prime n and a in [1, n-1].
                None
            };
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

/// Per piece j of a scalar, the odd multiples B_j, 3B_j, ..., (2K-1)B_j of B_j = 2^(16j)·P, in
/// affine form. P must be a finite point of the curve: then every entry is finite (the group
/// has prime order n and no multiple here is a multiple of n), so one shared inversion
/// normalises them all.
type Tables<const K: usize> = [[Affine; K]; PARTS];

fn build_tables<const K: usize>(p: &Affine) -> Tables<K> {
    let mut points = [[Jacobian::INFINITY; K]; PARTS];
    let mut base = Jacobian::from_affine(p);
    for (j, row) in points.iter_mut().enumerate() {
        if j > 0 {
            for _ in 0..PART_BITS {
                base = base.double();
            }
        }
        let twice = base.double();
        let mut multiple = base;
        for (i, slot) in row.iter_mut().enumerate() {
            if i > 0 {
                multiple = multiple.add(&twice);
            }
            *slot = multiple;
        }
    }
    // Batch inversion: prefix products of the Z coordinates, one inversion, then back.
    let mut prefix = [[Fe::ONE; K]; PARTS];
    let mut acc = Fe::ONE;
    for (pre, point) in prefix.iter_mut().flatten().zip(points.iter().flatten()) {
        *pre = acc;
        acc = acc.mul(&point.z);
    }
    let mut inv = acc.invert();
    let mut out = [[*p; K]; PARTS];
    let entries = out.iter_mut().flatten().rev();
    let backwards = entries.zip(points.iter().flatten().rev());
    for ((slot, point), pre) in backwards.zip(prefix.iter().flatten().rev()) {
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

fn g_tables() -> &'static Tables<G_TABLE> {
    static TABLES: OnceLock<Tables<G_TABLE>> = OnceLock::new();
    TABLES.get_or_init(|| {
        build_tables(&Affine {
            x: Fe(GX),
            y: Fe(GY),
        })
    })
}

/// Width-w NAF of a piece (up to 64 bits): digits odd or zero, |digit| < 2^(w-1), least significant
/// first, at least w-1 zeros after each non-zero digit, and their sum `digit_i·2^i` equals `k`.
fn wnaf(k: u64, w: u32) -> [i8; NAF_LEN] {
    let mut digits = [0i8; NAF_LEN];
    let bits_from = |pos: u32| k.checked_shr(pos).unwrap_or(0);
    let mask = (1u64 << w) - 1;
    // `carry` is 1 when the digits so far went past the value by 2^bit (a negative digit).
    let mut carry = 0u64;
    let mut bit = 0u32;
    while (bit as usize) < NAF_LEN {
        if bits_from(bit) & 1 == carry {
            bit += 1;
            continue;
        }
        // The next w bits plus the carry: an odd number in [1, 2^w).
        let word = (bits_from(bit) & mask) + carry;
        carry = word >> (w - 1);
        let digit = word as i64 - ((carry << w) as i64);
        if let Some(slot) = digits.get_mut(bit as usize) {
            *slot = digit as i8;
        }
        bit += w;
    }
    digits
}

/// The 16-bit pieces of a 256-bit scalar (the halves of its limbs), least significant first.
fn pieces(k: &Limbs) -> [u64; PARTS] {
    let mut out = [0u64; PARTS];
    for (pair, limb) in out.chunks_exact_mut(2).zip(k) {
        if let [lo, hi] = pair {
            *lo = u64::from(limb & 0xffff);
            *hi = u64::from(limb >> 16);
        }
    }
    out
}

/// The table entry for a non-zero NAF digit: `digit·B` from the odd multiples of B.
fn table_point<const K: usize>(table: &[Affine; K], digit: i8) -> Option<Affine> {
    let point = table.get(usize::from(digit.unsigned_abs() >> 1))?;
    Some(if digit < 0 { point.neg() } else { *point })
}

/// `u1·G + u2·Q`: the NAF digits of the thirty-two 16-bit pieces (sixteen of each scalar) are
/// added in from their tables over one shared chain of 17 doublings.
fn double_mul(u1: &Limbs, u2: &Limbs, q_tables: &Tables<Q_TABLE>) -> Jacobian {
    let g = g_tables();
    let d1 = pieces(u1).map(|k| wnaf(k, G_WINDOW));
    let d2 = pieces(u2).map(|k| wnaf(k, Q_WINDOW));
    let mut acc = Jacobian::INFINITY;
    for i in (0..NAF_LEN).rev() {
        // Doubling the point at infinity is a full doubling that yields it again: skipped until
        // the first digit.
        if !acc.is_infinity() {
            acc = acc.double();
        }
        for (digits, table) in d1.iter().zip(g) {
            if let Some(&digit) = digits.get(i).filter(|&&d| d != 0) {
                if let Some(p) = table_point(table, digit) {
                    acc = acc.add_affine(&p);
                }
            }
        }
        for (digits, table) in d2.iter().zip(q_tables) {
            if let Some(&digit) = digits.get(i).filter(|&&d| d != 0) {
                if let Some(p) = table_point(table, digit) {
                    acc = acc.add_affine(&p);
                }
            }
        }
    }
    acc
}

// ---------------------------------------------------------------------------------------------
// Keys and verification
// ---------------------------------------------------------------------------------------------

/// A P-256 public key ready for verification: its tables of odd multiples (see [`Tables`]),
/// built once at import and never changed.
pub(crate) struct VerifyingKey {
    tables: Tables<Q_TABLE>,
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
            tables: build_tables(&q),
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
        let digest = digest::digest(digest::Algorithm::Sha256, message);
        let Ok(hash) = <&[u8; 32]>::try_from(digest.as_ref()) else {
            return false;
        };
        let e = scalar_reduce(&limbs_from_be(hash));
        let Some(w) = scalar_invert_mont(&s) else {
            return false;
        };
        let u1 = scalar_mont_mul(&e, &w);
        let u2 = scalar_mont_mul(&r, &w);
        let sum = double_mul(&u1, &u2, &self.tables);
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
    use crate::testutil::{hex_array, random_bytes};
    use ring::rand::SystemRandom;
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
            limbs_from_be(&hex_array::<32>(
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
    fn wide_products_of_any_256_bit_values() {
        let mut values = vec![
            [u32::MAX; 8],
            [0; 8],
            P,
            N,
            [u32::MAX, 0, u32::MAX, 0, 1, 0, 0, 1],
        ];
        values.extend((0..30).map(|_| limbs_from_be(&random_bytes::<32>())));
        for a in &values {
            assert_eq!(sqr_wide(a).to_vec(), big_mul(a, a), "{a:x?}");
            for b in &values {
                assert_eq!(mul_wide(a, b).to_vec(), big_mul(a, b), "{a:x?} {b:x?}");
            }
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

    /// The two unconditional folds always leave nothing above 2^256, at the extremes of every
    /// sum: each limb either 0 or all ones, over many patterns.
    #[test]
    fn two_folds_are_enough() {
        let (mut lowest, mut highest) = (0, 0);
        for pattern in (0u32..1 << 16)
            .step_by(7)
            .chain([0, 0xffff, 0x00ff, 0xff00])
        {
            let mut c = [0u32; 16];
            for (i, limb) in c.iter_mut().enumerate() {
                if pattern >> i & 1 == 1 {
                    *limb = u32::MAX;
                }
            }
            let (mut acc, top) = solinas(&c);
            lowest = lowest.min(top);
            highest = highest.max(top);
            let first = fold(&mut acc, top);
            assert!((-1..=1).contains(&first), "{pattern:x}");
            assert_eq!(fold(&mut acc, first), 0, "{pattern:x}");
            if pattern % 331 == 0 || pattern == 0xffff {
                assert_eq!(reduce_wide(&c), big_rem(&c, &P), "{pattern:x}");
            }
        }
        // The patterns reach both ends of the range.
        assert!(lowest <= -3 && highest >= 4, "{lowest} {highest}");
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

    #[test]
    fn signed30_limbs_round_trip() {
        for a in sample(&N, 200) {
            let s = to_signed30(&a);
            assert!(s.iter().all(|&l| (0..1 << 30).contains(&l)));
            assert_eq!(from_signed30(&s), a);
        }
        // (-n, 2n) into [0, n): a + n and a - n for a few a.
        let n30 = to_signed30(&N);
        for a in sample(&N, 50) {
            let mut up = to_signed30(&a);
            add_signed30(&mut up, &n30, 1);
            into_range(&mut up, &n30);
            assert_eq!(from_signed30(&up), a);
            let mut down = to_signed30(&a);
            add_signed30(&mut down, &n30, -1);
            into_range(&mut down, &n30);
            assert_eq!(from_signed30(&down), a);
        }
        let mut n = n30;
        into_range(&mut n, &n30);
        assert_eq!(n, [0; 9]);
    }

    #[test]
    fn a_batch_of_divsteps_divides_exactly_and_stays_bounded() {
        for _ in 0..2000 {
            let (f, g) = (
                u64::from_le_bytes(random_bytes()) | 1,
                u64::from_le_bytes(random_bytes()),
            );
            let mut eta = i32::from(random_bytes::<1>()[0] as i8) / 8;
            let (u, v, q, r) = divsteps(&mut eta, f as u32, g as u32);
            assert!(u.abs() + v.abs() <= 1 << 30 && q.abs() + r.abs() <= 1 << 30);
            let (f, g) = (i128::from(f), i128::from(g));
            let (nf, ng) = (
                i128::from(u) * f + i128::from(v) * g,
                i128::from(q) * f + i128::from(r) * g,
            );
            assert_eq!(nf % (1 << 30), 0, "{f} {g}");
            assert_eq!(ng % (1 << 30), 0, "{f} {g}");
            // f stays odd.
            assert_eq!((nf >> 30) & 1, 1);
        }
    }

    #[test]
    fn inverses_of_many_scalars() {
        let r_mod_n = two_pow_256_mod(&N);
        for a in sample(&N, 3000).iter().filter(|a| !is_zero(a)) {
            let w = scalar_invert_mont(a).unwrap();
            assert!(less_than(&w, &N));
            assert_eq!(ref_mul(a, &w, &N), r_mod_n, "{a:x?}");
        }
        // Powers of two and their neighbours, whose divsteps run longest in one direction.
        for k in 0..256u32 {
            let mut p = [0u32; 8];
            if let Some(limb) = p.get_mut((k / 32) as usize) {
                *limb = 1 << (k % 32);
            }
            for a in [
                p,
                sub_limbs(&p, &[1, 0, 0, 0, 0, 0, 0, 0]).0,
                sub_limbs(&N, &p).0,
            ] {
                if is_zero(&a) || !less_than(&a, &N) {
                    continue;
                }
                let w = scalar_invert_mont(&a).unwrap();
                assert_eq!(ref_mul(&a, &w, &N), r_mod_n, "{a:x?}");
            }
        }
    }

    // ---- Points

    #[test]
    fn known_multiples_of_g() {
        let two_g = Jacobian::from_affine(&g()).double().to_affine().unwrap();
        assert_eq!(
            two_g.x.0,
            limbs_from_be(&hex_array::<32>(
                "7cf27b188d034f7e8a52380304b51ac3c08969e277f21b35a60b48fc47669978"
            ))
        );
        assert_eq!(
            two_g.y.0,
            limbs_from_be(&hex_array::<32>(
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
        let via_tables = double_mul(&n_minus_1, &[0; 8], &key.tables);
        assert_eq!(via_tables.to_affine(), Some(g().neg()));
        // (n-1)·G + 1·G through the key's table: P + (-P) inside the loop's last addition.
        let sum = double_mul(&n_minus_1, &[1, 0, 0, 0, 0, 0, 0, 0], &key.tables);
        assert!(sum.is_infinity());
        // And mixed: a·G + b·G with a + b = n.
        let a = sample(&N, 9)[8];
        let b = sub_limbs(&N, &a).0;
        assert!(double_mul(&a, &b, &key.tables).is_infinity());
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
            let via_naf = double_mul(d, &[0; 8], &key.tables);
            assert_eq!(via_naf.to_affine(), Some(q));
            let via_q_table = double_mul(&[0; 8], d, &key.tables);
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
        let check = |tables: &[Vec<Affine>], p: &Affine| {
            assert_eq!(tables.len(), PARTS);
            for (j, table) in tables.iter().enumerate() {
                for (i, entry) in table.iter().enumerate() {
                    // (2i + 1)·2^(PART_BITS·j) as a 256-bit scalar.
                    let mut k = [0u32; 8];
                    set_bits(&mut k, PART_BITS as usize * j, 2 * i as u64 + 1);
                    assert!(entry.is_on_curve());
                    assert_eq!(
                        Some(*entry),
                        scalar_mul_reference(&k, p).to_affine(),
                        "{j} {i}"
                    );
                }
            }
        };
        let q_tables: Vec<Vec<Affine>> = key.tables.iter().map(|t| t.to_vec()).collect();
        check(&q_tables, &q);
        assert_eq!(q_tables[0].len(), Q_TABLE);
        let g_tabs: Vec<Vec<Affine>> = g_tables().iter().map(|t| t.to_vec()).collect();
        check(&g_tabs, &g());
        assert_eq!(g_tabs[0].len(), G_TABLE);
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
        let top = (1u64 << PART_BITS) - 1;
        let half = 1u64 << (PART_BITS - 1);
        let mut values: Vec<u64> = vec![0, 1, 2, 3, top, top - 1, half, half - 1];
        values.extend(sample(&N, 40).iter().flat_map(pieces));
        values.extend((0..40).map(|_| u64::from_le_bytes(random_bytes()) & top));
        for k in values {
            for w in [G_WINDOW, Q_WINDOW, 2, 8] {
                let digits = wnaf(k, w);
                // Recompose: sum of d_i 2^i = k, in i128.
                let sum: i128 = digits
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| i128::from(d) << i)
                    .sum();
                assert_eq!(sum, i128::from(k), "{k:x} w={w}");
                let bound = 1i16 << (w - 1);
                let mut gap = usize::MAX;
                for &d in &digits {
                    if d != 0 {
                        assert!(d % 2 != 0 && i16::from(d).abs() < bound, "{k:x} w={w}");
                        assert!(gap >= (w - 1) as usize, "{k:x} w={w}");
                        gap = 0;
                    } else {
                        gap = gap.saturating_add(1);
                    }
                }
            }
        }
        // The pieces put the scalar back together.
        for k in sample(&N, 10) {
            let mut back = [0u32; 8];
            for (j, &x) in pieces(&k).iter().enumerate() {
                assert!(x <= top);
                set_bits(&mut back, PART_BITS as usize * j, x);
            }
            assert_eq!(back, k);
        }
    }

    /// ORs `value` (below 2^32) into a 256-bit scalar at bit `at`.
    fn set_bits(k: &mut Limbs, at: usize, value: u64) {
        let wide = value << (at % 32);
        k[at / 32] |= wide as u32;
        if let Some(next) = k.get_mut(at / 32 + 1) {
            *next |= (wide >> 32) as u32;
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

    /// Native timing, ours against ring: `cargo test --release -p shieldwall-jose p256::tests::timing
    /// -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn timing() {
        let rng = SystemRandom::new();
        let s = signer();
        let msg = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0";
        let sig = s.pair.sign(&rng, msg).unwrap().as_ref().to_vec();
        let rounds = 300;
        let time = |f: &dyn Fn() -> bool| crate::testutil::best_micros(rounds, f);
        let ours = time(&|| s.key.verify(msg, &sig));
        let ring = time(&|| ring_verifies(&s, msg, &sig));
        let import =
            time(&|| VerifyingKey::from_uncompressed(s.pair.public_key().as_ref()).is_some());
        println!(
            "ES256 verify, µs: ours {ours:.1}, ring {ring:.1}; key import (table) {import:.1}"
        );
    }
}
