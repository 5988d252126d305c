//! SHA-256, SHA-384 and SHA-512 (FIPS 180-4), and HMAC over them (RFC 2104), for the
//! verifiers of this crate.
//!
//! Written for size: one compression loop per word size, with the rounds rolled. Every step is
//! the same whatever the data, so hashing a secret (an HMAC key) leaks nothing through timing;
//! an HMAC tag is compared in constant time.

use std::fmt;

/// A hash of the SHA-2 family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    /// Digest length in bytes.
    pub(crate) fn output_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 32,
            Algorithm::Sha384 => 48,
            Algorithm::Sha512 => 64,
        }
    }

    /// Block length in bytes.
    fn block_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 | Algorithm::Sha512 => 128,
        }
    }
}

/// The round constants of SHA-256 (FIPS 180-4 §4.2.2).
const K256: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// The round constants of SHA-384 and SHA-512 (FIPS 180-4 §4.2.3).
const K512: [u64; 80] = [
    0x428a2f98d728ae22,
    0x7137449123ef65cd,
    0xb5c0fbcfec4d3b2f,
    0xe9b5dba58189dbbc,
    0x3956c25bf348b538,
    0x59f111f1b605d019,
    0x923f82a4af194f9b,
    0xab1c5ed5da6d8118,
    0xd807aa98a3030242,
    0x12835b0145706fbe,
    0x243185be4ee4b28c,
    0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f,
    0x80deb1fe3b1696b1,
    0x9bdc06a725c71235,
    0xc19bf174cf692694,
    0xe49b69c19ef14ad2,
    0xefbe4786384f25e3,
    0x0fc19dc68b8cd5b5,
    0x240ca1cc77ac9c65,
    0x2de92c6f592b0275,
    0x4a7484aa6ea6e483,
    0x5cb0a9dcbd41fbd4,
    0x76f988da831153b5,
    0x983e5152ee66dfab,
    0xa831c66d2db43210,
    0xb00327c898fb213f,
    0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2,
    0xd5a79147930aa725,
    0x06ca6351e003826f,
    0x142929670a0e6e70,
    0x27b70a8546d22ffc,
    0x2e1b21385c26c926,
    0x4d2c6dfc5ac42aed,
    0x53380d139d95b3df,
    0x650a73548baf63de,
    0x766a0abb3c77b2a8,
    0x81c2c92e47edaee6,
    0x92722c851482353b,
    0xa2bfe8a14cf10364,
    0xa81a664bbc423001,
    0xc24b8b70d0f89791,
    0xc76c51a30654be30,
    0xd192e819d6ef5218,
    0xd69906245565a910,
    0xf40e35855771202a,
    0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8,
    0x1e376c085141ab53,
    0x2748774cdf8eeb99,
    0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63,
    0x4ed8aa4ae3418acb,
    0x5b9cca4f7763e373,
    0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc,
    0x78a5636f43172f60,
    0x84c87814a1f0ab72,
    0x8cc702081a6439ec,
    0x90befffa23631e28,
    0xa4506cebde82bde9,
    0xbef9a3f7b2c67915,
    0xc67178f2e372532b,
    0xca273eceea26619c,
    0xd186b8c721c0c207,
    0xeada7dd6cde0eb1e,
    0xf57d4f7fee6ed178,
    0x06f067aa72176fba,
    0x0a637dc5a2c898a6,
    0x113f9804bef90dae,
    0x1b710b35131c471b,
    0x28db77f523047d84,
    0x32caab7b40c72493,
    0x3c9ebe0a15c9bebc,
    0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6,
    0x597f299cfc657e2a,
    0x5fcb6fab3ad6faec,
    0x6c44198c4a475817,
];

/// Initial hash values (FIPS 180-4 §5.3).
const H256: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
const H384: [u64; 8] = [
    0xcbbb9d5dc1059ed8,
    0x629a292a367cd507,
    0x9159015a3070dd17,
    0x152fecd8f70e5939,
    0x67332667ffc00b31,
    0x8eb44a8768581511,
    0xdb0c2e0d64f98fa7,
    0x47b5481dbefa4fa4,
];
const H512: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

/// The chaining value: eight words of the algorithm's size.
#[derive(Clone, PartialEq, Eq)]
enum State {
    Words32([u32; 8]),
    Words64([u64; 8]),
}

/// A hash being computed: feed it with [`Context::update`], read it with [`Context::finish`].
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Context {
    algorithm: Algorithm,
    state: State,
    /// Bytes of the block being filled (the first `buffered`).
    block: [u8; 128],
    buffered: usize,
    /// Bytes hashed so far.
    total: u128,
}

/// A finished digest.
#[derive(Clone, Copy)]
pub(crate) struct Digest {
    bytes: [u8; 64],
    len: usize,
}

impl AsRef<[u8]> for Digest {
    fn as_ref(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

/// The digest of `data`.
pub(crate) fn digest(algorithm: Algorithm, data: &[u8]) -> Digest {
    let mut context = Context::new(algorithm);
    context.update(data);
    context.finish()
}

/// SHA-256 of `data`, for the filters that hash outside a signature (a certificate's
/// thumbprint).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(Algorithm::Sha256, data).as_ref());
    out
}

impl Context {
    pub(crate) fn new(algorithm: Algorithm) -> Context {
        let state = match algorithm {
            Algorithm::Sha256 => State::Words32(H256),
            Algorithm::Sha384 => State::Words64(H384),
            Algorithm::Sha512 => State::Words64(H512),
        };
        Context {
            algorithm,
            state,
            block: [0; 128],
            buffered: 0,
            total: 0,
        }
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        let block_len = self.algorithm.block_len();
        self.total += data.len() as u128;
        while !data.is_empty() {
            let take = (block_len - self.buffered).min(data.len());
            let (head, rest) = data.split_at(take);
            if let Some(dst) = self.block.get_mut(self.buffered..self.buffered + take) {
                dst.copy_from_slice(head);
            }
            self.buffered += take;
            data = rest;
            if self.buffered == block_len {
                self.compress();
                self.buffered = 0;
            }
        }
    }

    pub(crate) fn finish(mut self) -> Digest {
        let block_len = self.algorithm.block_len();
        // The length field: 8 bytes for SHA-256, 16 for the 64-bit family.
        let length_len = block_len / 8;
        let bits = self.total.wrapping_mul(8);
        let mut padding = [0u8; 128 + 16 + 1];
        padding[0] = 0x80;
        let zeros = (2 * block_len - self.buffered - 1 - length_len) % block_len;
        let end = 1 + zeros + length_len;
        if let Some(field) = padding.get_mut(1 + zeros..end) {
            let be = bits.to_be_bytes();
            field.copy_from_slice(be.get(16 - length_len..).unwrap_or_default());
        }
        let total = self.total;
        self.update(padding.get(..end).unwrap_or_default());
        self.total = total;
        let mut bytes = [0u8; 64];
        match &self.state {
            State::Words32(h) => {
                for (out, word) in bytes.chunks_exact_mut(4).zip(h) {
                    out.copy_from_slice(&word.to_be_bytes());
                }
            }
            State::Words64(h) => {
                for (out, word) in bytes.chunks_exact_mut(8).zip(h) {
                    out.copy_from_slice(&word.to_be_bytes());
                }
            }
        }
        Digest {
            bytes,
            len: self.algorithm.output_len(),
        }
    }

    /// One block through the compression function (FIPS 180-4 §6.2.2, §6.4.2).
    fn compress(&mut self) {
        match &mut self.state {
            State::Words32(h) => {
                let mut w = [0u32; 64];
                for (word, bytes) in w.iter_mut().zip(self.block.chunks_exact(4)) {
                    *word = bytes.iter().fold(0, |acc, &b| (acc << 8) | u32::from(b));
                }
                for t in 16..64 {
                    let at = |i: usize| w.get(i).copied().unwrap_or(0);
                    let (w2, w7, w15, w16) = (at(t - 2), at(t - 7), at(t - 15), at(t - 16));
                    let s0 = w15.rotate_right(7) ^ w15.rotate_right(18) ^ (w15 >> 3);
                    let s1 = w2.rotate_right(17) ^ w2.rotate_right(19) ^ (w2 >> 10);
                    if let Some(slot) = w.get_mut(t) {
                        *slot = w16.wrapping_add(s0).wrapping_add(w7).wrapping_add(s1);
                    }
                }
                let mut v = *h;
                for (&k, &wt) in K256.iter().zip(&w) {
                    let [a, b, c, d, e, f, g, hh] = v;
                    let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
                    let ch = (e & f) ^ (!e & g);
                    let t1 = hh
                        .wrapping_add(s1)
                        .wrapping_add(ch)
                        .wrapping_add(k)
                        .wrapping_add(wt);
                    let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
                    let maj = (a & b) ^ (a & c) ^ (b & c);
                    let t2 = s0.wrapping_add(maj);
                    v = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
                }
                for (x, y) in h.iter_mut().zip(v) {
                    *x = x.wrapping_add(y);
                }
            }
            State::Words64(h) => {
                let mut w = [0u64; 80];
                for (word, bytes) in w.iter_mut().zip(self.block.chunks_exact(8)) {
                    *word = bytes.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b));
                }
                for t in 16..80 {
                    let at = |i: usize| w.get(i).copied().unwrap_or(0);
                    let (w2, w7, w15, w16) = (at(t - 2), at(t - 7), at(t - 15), at(t - 16));
                    let s0 = w15.rotate_right(1) ^ w15.rotate_right(8) ^ (w15 >> 7);
                    let s1 = w2.rotate_right(19) ^ w2.rotate_right(61) ^ (w2 >> 6);
                    if let Some(slot) = w.get_mut(t) {
                        *slot = w16.wrapping_add(s0).wrapping_add(w7).wrapping_add(s1);
                    }
                }
                let mut v = *h;
                for (&k, &wt) in K512.iter().zip(&w) {
                    let [a, b, c, d, e, f, g, hh] = v;
                    let s1 = e.rotate_right(14) ^ e.rotate_right(18) ^ e.rotate_right(41);
                    let ch = (e & f) ^ (!e & g);
                    let t1 = hh
                        .wrapping_add(s1)
                        .wrapping_add(ch)
                        .wrapping_add(k)
                        .wrapping_add(wt);
                    let s0 = a.rotate_right(28) ^ a.rotate_right(34) ^ a.rotate_right(39);
                    let maj = (a & b) ^ (a & c) ^ (b & c);
                    let t2 = s0.wrapping_add(maj);
                    v = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
                }
                for (x, y) in h.iter_mut().zip(v) {
                    *x = x.wrapping_add(y);
                }
            }
        }
    }
}

/// An HMAC key with its inner and outer padded blocks already hashed (RFC 2104): a tag then
/// costs the message's blocks and two finishing blocks.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct HmacKey {
    inner: Context,
    outer: Context,
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key material, not even hashed.
        write!(f, "HmacKey({:?})", self.inner.algorithm)
    }
}

impl HmacKey {
    pub(crate) fn new(algorithm: Algorithm, key: &[u8]) -> HmacKey {
        let block_len = algorithm.block_len();
        let mut padded = [0u8; 128];
        if key.len() > block_len {
            let hashed = digest(algorithm, key);
            let h = hashed.as_ref();
            if let Some(dst) = padded.get_mut(..h.len()) {
                dst.copy_from_slice(h);
            }
        } else if let Some(dst) = padded.get_mut(..key.len()) {
            dst.copy_from_slice(key);
        }
        let pad = |byte: u8| {
            let mut context = Context::new(algorithm);
            let block: Vec<u8> = padded.iter().take(block_len).map(|b| b ^ byte).collect();
            context.update(&block);
            context
        };
        HmacKey {
            inner: pad(0x36),
            outer: pad(0x5c),
        }
    }

    /// The tag of `message`.
    #[cfg(test)]
    pub(crate) fn sign(&self, message: &[u8]) -> Digest {
        self.sign_parts(&[message])
    }

    /// The tag of the concatenation of `parts`.
    pub(crate) fn sign_parts(&self, parts: &[&[u8]]) -> Digest {
        let mut inner = self.inner.clone();
        for part in parts {
            inner.update(part);
        }
        let mut outer = self.outer.clone();
        outer.update(inner.finish().as_ref());
        outer.finish()
    }

    /// Whether `tag` is the tag of `message`; the comparison takes the same time wherever the
    /// tags differ.
    pub(crate) fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        self.verify_parts(&[message], tag)
    }

    /// [`HmacKey::verify`] of the concatenation of `parts`.
    pub(crate) fn verify_parts(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let expected = self.sign_parts(parts);
        let expected = expected.as_ref();
        if tag.len() != expected.len() {
            return false;
        }
        let diff = expected
            .iter()
            .zip(tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        diff == 0
    }
}

/// HMAC-SHA256 for the filters that key a hash or link records (token-introspection's cache
/// keys, audit-log's masking tags and record chain): the key's padded blocks hashed once, a tag
/// over several parts without joining them, tags compared in constant time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HmacSha256(HmacKey);

impl HmacSha256 {
    pub fn new(key: &[u8]) -> HmacSha256 {
        HmacSha256(HmacKey::new(Algorithm::Sha256, key))
    }

    /// The tag of the concatenation of `parts`.
    pub fn sign(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.sign_parts(parts).as_ref());
        out
    }

    /// Whether `tag` is the tag of the concatenation of `parts` (compared in constant time).
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        self.0.verify_parts(parts, tag)
    }
}

#[cfg(test)]
mod tests {
    use ring::{digest as rd, hmac as rh};

    use super::*;
    use crate::testutil::{hex, random_vec};

    const ALGS: [(Algorithm, &rd::Algorithm, rh::Algorithm); 3] = [
        (Algorithm::Sha256, &rd::SHA256, rh::HMAC_SHA256),
        (Algorithm::Sha384, &rd::SHA384, rh::HMAC_SHA384),
        (Algorithm::Sha512, &rd::SHA512, rh::HMAC_SHA512),
    ];

    #[test]
    fn known_answers() {
        // FIPS 180-4 examples ("abc", the two-block messages) and the empty string.
        let cases: [(Algorithm, &[u8], &str); 7] = [
            (
                Algorithm::Sha256,
                b"abc",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                Algorithm::Sha256,
                b"",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                Algorithm::Sha256,
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            ),
            (
                Algorithm::Sha384,
                b"abc",
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
                 8086072ba1e7cc2358baeca134c825a7",
            ),
            (
                Algorithm::Sha512,
                b"abc",
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                 2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
            (
                Algorithm::Sha512,
                b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
                "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018\
                 501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909",
            ),
            (
                Algorithm::Sha384,
                b"",
                "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da\
                 274edebfe76f65fbd51ad2f14898b95b",
            ),
        ];
        for (alg, msg, want) in cases {
            assert_eq!(digest(alg, msg).as_ref(), hex(want), "{alg:?} {msg:?}");
        }
        // A million 'a' (FIPS 180-4 examples), fed in uneven pieces.
        let mut context = Context::new(Algorithm::Sha256);
        for piece in [1usize, 63, 64, 65, 127, 999_680] {
            context.update(&vec![b'a'; piece]);
        }
        assert_eq!(
            context.finish().as_ref(),
            hex("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        );
    }

    #[test]
    fn every_length_and_split_matches_ring() {
        for (alg, ring_alg, _) in ALGS {
            for len in (0..300).chain([1000, 4096, 10_007]) {
                let data = random_vec(len);
                let want = rd::digest(ring_alg, &data);
                assert_eq!(digest(alg, &data).as_ref(), want.as_ref(), "{alg:?} {len}");
                let cut = len / 3;
                let mut context = Context::new(alg);
                context.update(&data[..cut]);
                context.update(&[]);
                context.update(&data[cut..]);
                assert_eq!(
                    context.finish().as_ref(),
                    want.as_ref(),
                    "{alg:?} {len} split"
                );
            }
        }
    }

    #[test]
    fn hmac_known_answers() {
        // RFC 4231, test cases 1, 2 and 6 (a key longer than the block).
        let cases: [(&[u8], &[u8], [&str; 3]); 3] = [
            (
                &[0x0b; 20],
                b"Hi There",
                [
                    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                    "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c\
                     faea9ea9076ede7f4af152e8b2fa9cb6",
                    "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde\
                     daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
                ],
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                [
                    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                    "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
                     8e2240ca5e69e2c78b3239ecfab21649",
                    "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
                     9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
                ],
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                [
                    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                    "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6\
                     0c2ef6ab4030fe8296248df163f44952",
                    "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352\
                     6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
                ],
            ),
        ];
        for (key, msg, wants) in cases {
            for ((alg, _, _), want) in ALGS.into_iter().zip(wants) {
                let k = HmacKey::new(alg, key);
                assert_eq!(k.sign(msg).as_ref(), hex(want), "{alg:?}");
                assert!(k.verify(msg, k.sign(msg).as_ref()));
            }
        }
    }

    #[test]
    fn hmac_matches_ring_and_refuses_every_changed_tag() {
        for (alg, _, ring_alg) in ALGS {
            for key_len in [0usize, 1, 31, 32, 63, 64, 65, 127, 128, 129, 300] {
                let key = random_vec(key_len);
                let msg = random_vec(key_len * 3 + 1);
                let ours = HmacKey::new(alg, &key);
                let theirs = rh::Key::new(ring_alg, &key);
                let tag = rh::sign(&theirs, &msg);
                assert_eq!(ours.sign(&msg).as_ref(), tag.as_ref(), "{alg:?} {key_len}");
                assert!(ours.verify(&msg, tag.as_ref()));
                for i in 0..tag.as_ref().len() {
                    let mut bad = tag.as_ref().to_vec();
                    bad[i] ^= 1 << (i % 8);
                    assert!(!ours.verify(&msg, &bad), "{alg:?} byte {i}");
                }
                let short = &tag.as_ref()[..tag.as_ref().len() - 1];
                assert!(!ours.verify(&msg, short));
                assert!(!ours.verify(&msg, &[tag.as_ref(), &[0]].concat()));
                assert!(!ours.verify(&msg, &[]));
            }
        }
        // Debug never shows the key.
        let shown = format!("{:?}", HmacKey::new(Algorithm::Sha256, b"secret"));
        assert_eq!(shown, "HmacKey(Sha256)");
        let shown = format!("{:?}", HmacSha256::new(b"secret"));
        assert_eq!(shown, "HmacSha256(HmacKey(Sha256))");
    }

    #[test]
    fn the_public_hmac_signs_the_parts_as_one_message() {
        let key = random_vec(32);
        let ours = HmacSha256::new(&key);
        let theirs = rh::Key::new(rh::HMAC_SHA256, &key);
        for len in [0usize, 1, 55, 56, 64, 65, 200] {
            let msg = random_vec(len);
            let tag = rh::sign(&theirs, &msg);
            for cut in [0, len / 3, len] {
                let (a, b) = msg.split_at(cut);
                assert_eq!(ours.sign(&[a, b]).as_slice(), tag.as_ref(), "{len} {cut}");
                assert_eq!(ours.sign(&[a, &[], b]).as_slice(), tag.as_ref());
                assert!(ours.verify(&[a, b], tag.as_ref()));
                let mut bad = tag.as_ref().to_vec();
                bad[len % 32] ^= 0x80;
                assert!(!ours.verify(&[a, b], &bad));
            }
        }
        assert_eq!(
            sha256(b"abc").as_slice(),
            rd::digest(&rd::SHA256, b"abc").as_ref()
        );
    }
}
