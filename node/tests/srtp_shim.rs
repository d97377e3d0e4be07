//! Tests of mediasoup-build-kit's `srtp3_compat.c`, the libsrtp 3 API the worker calls,
//! reached through FFI in the worker library that `mediasoup-sys` links.
//!
//! A binary of its own: libsrtp's `srtp_init` is process-global and not thread-safe, so no
//! mediasoup worker may start beside it. The packets are also checked against an independent
//! SRTP implementation (`rtc-srtp`), so the shim cannot agree with itself on a wrong answer.

use std::ffi::{c_int, c_uint, c_void};
use std::sync::Once;

use rtc_srtp::context::Context;
use rtc_srtp::protection_profile::ProtectionProfile;

// The worker library is what holds the shim: link it.
use mediasoup_sys as _;

/// `srtp_err_status_t` values of the kit's include/srtp.h.
const OK: c_int = 0;
const BAD_PARAM: c_int = 2;
const AUTH_FAIL: c_int = 7;
const REPLAY_FAIL: c_int = 9;
const BAD_MKI: c_int = 25;
const BUFFER_SMALL: c_int = 28;

/// `srtp_ssrc_type_t`.
const SSRC_ANY_INBOUND: c_int = 2;
const SSRC_ANY_OUTBOUND: c_int = 3;

/// The packet sizes the issue names: a bare header, a usual packet, and the largest the worker
/// protects (its 65,536-byte buffer less `SRTP_MAX_TRAILER_LEN`).
const SIZES: [usize; 3] = [12, 1_200, 65_388];
const SSRC: u32 = 0x1234_5678;
/// Output room for tests not about capacity: what the worker always leaves (`SRTP_MAX_TRAILER_LEN`).
const ROOM: usize = 16 + 128 + 4;

#[repr(C)]
#[derive(Clone, Copy)]
struct SrtpSsrc {
    kind: c_int,
    value: c_uint,
}

extern "C" {
    fn srtp_init() -> c_int;
    fn srtp_policy_create(policy: *mut *mut c_void) -> c_int;
    fn srtp_policy_destroy(policy: *mut c_void);
    fn srtp_policy_set_ssrc(policy: *mut c_void, ssrc: SrtpSsrc) -> c_int;
    fn srtp_policy_set_profile(policy: *mut c_void, profile: c_int) -> c_int;
    fn srtp_policy_add_key(
        policy: *mut c_void,
        key: *const u8,
        key_len: usize,
        salt: *const u8,
        salt_len: usize,
        mki: *const u8,
        mki_len: usize,
    ) -> c_int;
    fn srtp_profile_get_master_key_length(profile: c_int) -> usize;
    fn srtp_profile_get_master_salt_length(profile: c_int) -> usize;
    fn srtp_create(session: *mut *mut c_void, policy: *const c_void) -> c_int;
    fn srtp_dealloc(session: *mut c_void) -> c_int;
    fn srtp_stream_remove(session: *mut c_void, ssrc: c_uint) -> c_int;
    fn srtp_protect(
        ctx: *mut c_void,
        rtp: *const u8,
        rtp_len: usize,
        srtp: *mut u8,
        srtp_len: *mut usize,
        mki_index: usize,
    ) -> c_int;
    fn srtp_unprotect(
        ctx: *mut c_void,
        srtp: *const u8,
        srtp_len: usize,
        rtp: *mut u8,
        rtp_len: *mut usize,
    ) -> c_int;
    fn srtp_protect_rtcp(
        ctx: *mut c_void,
        rtcp: *const u8,
        rtcp_len: usize,
        srtcp: *mut u8,
        srtcp_len: *mut usize,
        mki_index: usize,
    ) -> c_int;
    fn srtp_unprotect_rtcp(
        ctx: *mut c_void,
        srtcp: *const u8,
        srtcp_len: usize,
        rtcp: *mut u8,
        rtcp_len: *mut usize,
    ) -> c_int;
}

fn init() {
    static INIT: Once = Once::new();
    // SAFETY: called once per process, before any session exists.
    INIT.call_once(|| assert_eq!(unsafe { srtp_init() }, OK, "srtp_init"));
}

/// The four profiles the worker offers, with their `srtp_profile_t` and trailer lengths.
#[derive(Clone, Copy, Debug)]
struct Profile {
    id: c_int,
    /// Authentication tag of an SRTP packet.
    rtp_tag: usize,
    /// Tag plus the 4-byte SRTCP index of an SRTCP packet.
    rtcp_trailer: usize,
    reference: ProtectionProfile,
}

const PROFILES: [Profile; 4] = [
    Profile {
        id: 1,
        rtp_tag: 10,
        rtcp_trailer: 14,
        reference: ProtectionProfile::Aes128CmHmacSha1_80,
    },
    Profile {
        id: 2,
        rtp_tag: 4,
        // SRTCP keeps the 80-bit tag with the _32 profile (RFC 5764, 4.1.2).
        rtcp_trailer: 14,
        reference: ProtectionProfile::Aes128CmHmacSha1_32,
    },
    Profile {
        id: 7,
        rtp_tag: 16,
        rtcp_trailer: 20,
        reference: ProtectionProfile::AeadAes128Gcm,
    },
    Profile {
        id: 8,
        rtp_tag: 16,
        rtcp_trailer: 20,
        reference: ProtectionProfile::AeadAes256Gcm,
    },
];

impl Profile {
    /// A master key and salt of the profile's lengths (deterministic, distinct bytes).
    fn key_and_salt(self) -> (Vec<u8>, Vec<u8>) {
        // SAFETY: pure functions of an enum value.
        let (key_len, salt_len) = unsafe {
            (
                srtp_profile_get_master_key_length(self.id),
                srtp_profile_get_master_salt_length(self.id),
            )
        };
        assert_eq!(key_len, self.reference.key_len(), "{self:?} key length");
        assert_eq!(salt_len, self.reference.salt_len(), "{self:?} salt length");
        let key = (0..key_len).map(|i| (i * 7 + 1) as u8).collect();
        let salt = (0..salt_len).map(|i| (i * 13 + 5) as u8).collect();
        (key, salt)
    }

    fn reference_context(self) -> Context {
        let (key, salt) = self.key_and_salt();
        let provider = rtc_crypto::default_provider().expect("a crypto provider");
        Context::new(&key, &salt, self.reference, None, None, provider.crypto())
            .expect("reference SRTP context")
    }
}

/// A policy being built, destroyed on drop.
struct Policy(*mut c_void);

impl Policy {
    fn new(direction: c_int, profile: Profile) -> Self {
        init();
        let mut raw = std::ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; the policy is destroyed in Drop.
        assert_eq!(unsafe { srtp_policy_create(&mut raw) }, OK);
        let policy = Self(raw);
        let ssrc = SrtpSsrc {
            kind: direction,
            value: 0,
        };
        // SAFETY: `policy.0` is a live policy.
        unsafe {
            assert_eq!(srtp_policy_set_ssrc(policy.0, ssrc), OK);
            assert_eq!(srtp_policy_set_profile(policy.0, profile.id), OK);
        }
        policy
    }

    fn add_key(&self, key: &[u8], salt: &[u8]) -> c_int {
        // SAFETY: the slices outlive the call, which copies them.
        unsafe {
            srtp_policy_add_key(
                self.0,
                key.as_ptr(),
                key.len(),
                salt.as_ptr(),
                salt.len(),
                std::ptr::null(),
                0,
            )
        }
    }

    fn create(&self) -> Result<Session, c_int> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: `self.0` is a live policy; 2.x copies what it needs.
        match unsafe { srtp_create(&mut raw, self.0) } {
            OK => Ok(Session(raw)),
            status => Err(status),
        }
    }
}

impl Drop for Policy {
    fn drop(&mut self) {
        // SAFETY: created by srtp_policy_create, destroyed once.
        unsafe { srtp_policy_destroy(self.0) }
    }
}

/// An SRTP session, deallocated on drop.
struct Session(*mut c_void);

impl Session {
    fn new(direction: c_int, profile: Profile) -> Self {
        let policy = Policy::new(direction, profile);
        let (key, salt) = profile.key_and_salt();
        assert_eq!(policy.add_key(&key, &salt), OK);
        policy.create().expect("srtp_create")
    }

    /// Runs `op` from `input` into a fresh buffer of `capacity` bytes prefilled with 0xEE:
    /// the status, the output, and the whole buffer (to see what was touched).
    fn run(&self, op: Op, input: &[u8], capacity: usize) -> (c_int, Vec<u8>, Vec<u8>) {
        let mut out = vec![0xEE; capacity];
        let mut len = capacity;
        // SAFETY: `input` and `out` are valid for their lengths; `len` is the capacity.
        let status = unsafe {
            match op {
                Op::Protect => srtp_protect(
                    self.0,
                    input.as_ptr(),
                    input.len(),
                    out.as_mut_ptr(),
                    &mut len,
                    0,
                ),
                Op::Unprotect => srtp_unprotect(
                    self.0,
                    input.as_ptr(),
                    input.len(),
                    out.as_mut_ptr(),
                    &mut len,
                ),
                Op::ProtectRtcp => srtp_protect_rtcp(
                    self.0,
                    input.as_ptr(),
                    input.len(),
                    out.as_mut_ptr(),
                    &mut len,
                    0,
                ),
                Op::UnprotectRtcp => srtp_unprotect_rtcp(
                    self.0,
                    input.as_ptr(),
                    input.len(),
                    out.as_mut_ptr(),
                    &mut len,
                ),
            }
        };
        let written = if status == OK {
            out[..len].to_vec()
        } else {
            Vec::new()
        };
        (status, written, out)
    }

    /// Runs `op` in place, the way the worker decrypts.
    fn run_in_place(&self, op: Op, packet: &mut Vec<u8>) -> c_int {
        let mut len = packet.len();
        // SAFETY: in place with the buffer's own length as capacity (unprotect only shrinks).
        let status = unsafe {
            match op {
                Op::Unprotect => {
                    srtp_unprotect(self.0, packet.as_ptr(), len, packet.as_mut_ptr(), &mut len)
                }
                Op::UnprotectRtcp => {
                    srtp_unprotect_rtcp(self.0, packet.as_ptr(), len, packet.as_mut_ptr(), &mut len)
                }
                Op::Protect | Op::ProtectRtcp => unreachable!("the worker protects out of place"),
            }
        };
        if status == OK {
            packet.truncate(len);
        }
        status
    }

    /// Removes a stream exactly as the worker does (`SrtpSession::RemoveStream`).
    fn remove_stream_like_worker(&self, ssrc: u32) -> c_int {
        // SAFETY: a live session.
        unsafe { srtp_stream_remove(self.0, ssrc.to_be()) }
    }

    fn remove_stream(&self, ssrc: u32) -> c_int {
        // SAFETY: a live session.
        unsafe { srtp_stream_remove(self.0, ssrc) }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: created by srtp_create, deallocated once.
        unsafe { srtp_dealloc(self.0) };
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Protect,
    Unprotect,
    ProtectRtcp,
    UnprotectRtcp,
}

/// An RTP packet of `size` bytes (header included) with a payload pattern.
fn rtp(size: usize, seq: u16) -> Vec<u8> {
    let mut packet = vec![0x80, 96];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    packet.extend_from_slice(&SSRC.to_be_bytes());
    packet.extend((12..size).map(|i| (i % 251) as u8));
    packet
}

/// An RTCP receiver report of `size` bytes (a multiple of 4, at least 8).
fn rtcp(size: usize) -> Vec<u8> {
    let words = u16::try_from(size / 4 - 1).expect("RTCP length fits");
    let mut packet = vec![0x80, 201];
    packet.extend_from_slice(&words.to_be_bytes());
    packet.extend_from_slice(&SSRC.to_be_bytes());
    packet.extend((8..size).map(|i| (i % 241) as u8));
    packet
}

/// Protects `plain` with exactly the room it needs, after checking that one byte less is
/// refused with the buffer untouched (and without spending the packet's index).
fn protect_exactly(session: &Session, op: Op, plain: &[u8], trailer: usize, what: &str) -> Vec<u8> {
    let exact = plain.len() + trailer;
    let (status, _, buffer) = session.run(op, plain, exact - 1);
    assert_eq!(
        status,
        BUFFER_SMALL,
        "{what}: {op:?} into {} bytes",
        exact - 1
    );
    assert!(
        buffer.iter().all(|&b| b == 0xEE),
        "{what}: buffer untouched"
    );
    let (status, protected, _) = session.run(op, plain, exact);
    assert_eq!(status, OK, "{what}: {op:?} into exactly {exact} bytes");
    assert_eq!(protected.len(), exact, "{what}: protected length");
    // Headers stay in clear (12 bytes of RTP, 8 of RTCP); what follows is encrypted.
    if plain.len() > 12 {
        assert_ne!(
            &protected[12..plain.len()],
            &plain[12..],
            "{what}: encrypted"
        );
    }
    protected
}

/// Unprotects `protected` with exactly the room the plain packet needs, after one byte less.
fn unprotect_exactly(session: &Session, op: Op, protected: &[u8], plain: &[u8], what: &str) {
    let (status, _, buffer) = session.run(op, protected, plain.len() - 1);
    assert_eq!(
        status,
        BUFFER_SMALL,
        "{what}: {op:?} into {} bytes",
        plain.len() - 1
    );
    assert!(
        buffer.iter().all(|&b| b == 0xEE),
        "{what}: buffer untouched"
    );
    let (status, decrypted, _) = session.run(op, protected, plain.len());
    assert_eq!(
        status,
        OK,
        "{what}: {op:?} into exactly {} bytes",
        plain.len()
    );
    assert_eq!(decrypted, plain, "{what}: round trip");
}

/// RTP or RTCP, for the tests that do the same with both.
#[derive(Clone, Copy, Debug)]
enum Packet {
    Rtp,
    Rtcp,
}

impl Packet {
    fn build(self, size: usize, seq: u16) -> Vec<u8> {
        match self {
            Packet::Rtp => rtp(size, seq),
            Packet::Rtcp => rtcp(size),
        }
    }

    fn ops(self) -> (Op, Op) {
        match self {
            Packet::Rtp => (Op::Protect, Op::Unprotect),
            Packet::Rtcp => (Op::ProtectRtcp, Op::UnprotectRtcp),
        }
    }

    fn trailer(self, profile: Profile) -> usize {
        match self {
            Packet::Rtp => profile.rtp_tag,
            Packet::Rtcp => profile.rtcp_trailer,
        }
    }

    /// What an independent implementation reads from `protected`.
    fn reference_decrypt(self, context: &mut Context, protected: &[u8]) -> Vec<u8> {
        let decrypted = match self {
            Packet::Rtp => context.decrypt_rtp(protected),
            Packet::Rtcp => context.decrypt_rtcp(protected),
        };
        decrypted
            .unwrap_or_else(|e| panic!("rtc-srtp decrypts the shim's {self:?}: {e}"))
            .to_vec()
    }
}

/// Every profile and size: protected into exactly the room it needs (not a byte less), read
/// by rtc-srtp, and unprotected into exactly the room of the plain packet.
fn round_trips_with_exact_capacity(packet: Packet) {
    let (protect, unprotect) = packet.ops();
    for profile in PROFILES {
        let sender = Session::new(SSRC_ANY_OUTBOUND, profile);
        let receiver = Session::new(SSRC_ANY_INBOUND, profile);
        let mut reference = profile.reference_context();
        for (i, size) in SIZES.into_iter().enumerate() {
            let what = format!("{profile:?} {packet:?} {size} bytes");
            let plain = packet.build(size, i as u16 + 1);
            let trailer = packet.trailer(profile);
            let protected = protect_exactly(&sender, protect, &plain, trailer, &what);
            let decrypted = packet.reference_decrypt(&mut reference, &protected);
            assert_eq!(decrypted, plain, "{what}: as rtc-srtp reads it");
            unprotect_exactly(&receiver, unprotect, &protected, &plain, &what);
        }
    }
}

#[test]
fn rtp_round_trips_with_exact_capacity_in_every_profile_and_size() {
    round_trips_with_exact_capacity(Packet::Rtp);
}

#[test]
fn rtcp_round_trips_with_exact_capacity_in_every_profile_and_size() {
    round_trips_with_exact_capacity(Packet::Rtcp);
}

#[test]
fn packets_from_an_independent_sender_decrypt_in_place() {
    for profile in PROFILES {
        let receiver = Session::new(SSRC_ANY_INBOUND, profile);
        let mut reference = profile.reference_context();
        let plain = rtp(1_200, 7);
        let mut packet = reference
            .encrypt_rtp(&plain)
            .expect("rtc-srtp encrypts")
            .to_vec();
        assert_eq!(
            receiver.run_in_place(Op::Unprotect, &mut packet),
            OK,
            "{profile:?}"
        );
        assert_eq!(packet, plain, "{profile:?} RTP");
        let plain = rtcp(100);
        let mut packet = reference
            .encrypt_rtcp(&plain)
            .expect("rtc-srtp encrypts")
            .to_vec();
        assert_eq!(
            receiver.run_in_place(Op::UnprotectRtcp, &mut packet),
            OK,
            "{profile:?}"
        );
        assert_eq!(packet, plain, "{profile:?} RTCP");
    }
}

/// A receiver of `profile`, and a 1,200-byte `packet` protected for it.
fn protected_for_a_receiver(profile: Profile, packet: Packet) -> (Session, Vec<u8>, Op) {
    let (protect, unprotect) = packet.ops();
    let sender = Session::new(SSRC_ANY_OUTBOUND, profile);
    let plain = packet.build(1_200, 1);
    let (status, protected, _) = sender.run(protect, &plain, plain.len() + ROOM);
    assert_eq!(status, OK, "{profile:?} {packet:?}");
    (
        Session::new(SSRC_ANY_INBOUND, profile),
        protected,
        unprotect,
    )
}

#[test]
fn a_tampered_packet_fails_authentication() {
    for profile in PROFILES {
        for packet in [Packet::Rtp, Packet::Rtcp] {
            let (receiver, mut protected, unprotect) = protected_for_a_receiver(profile, packet);
            protected[40] ^= 0x01;
            let (status, _, _) = receiver.run(unprotect, &protected, protected.len());
            assert_eq!(status, AUTH_FAIL, "{profile:?} tampered {packet:?}");
        }
    }
}

#[test]
fn a_replayed_packet_is_refused() {
    for profile in PROFILES {
        for packet in [Packet::Rtp, Packet::Rtcp] {
            let (receiver, protected, unprotect) = protected_for_a_receiver(profile, packet);
            assert_eq!(receiver.run(unprotect, &protected, protected.len()).0, OK);
            let (status, _, _) = receiver.run(unprotect, &protected, protected.len());
            assert_eq!(status, REPLAY_FAIL, "{profile:?} replayed {packet:?}");
        }
    }
}

/// The worker passes `htonl(ssrc)` to `srtp_stream_remove`, whose libsrtp 3 argument is in
/// host byte order: libsrtp 3 then finds no stream, and the replay window survives. The shim
/// must do exactly that, not remove the stream and let a replay through.
#[test]
fn the_workers_stream_removal_keeps_the_replay_window_as_libsrtp3_does() {
    for profile in PROFILES {
        let (receiver, protected, unprotect) = protected_for_a_receiver(profile, Packet::Rtp);
        assert_eq!(receiver.run(unprotect, &protected, protected.len()).0, OK);
        receiver.remove_stream_like_worker(SSRC);
        let (status, _, _) = receiver.run(unprotect, &protected, protected.len());
        assert_eq!(
            status, REPLAY_FAIL,
            "{profile:?}: replay after the worker's removal"
        );
    }
}

/// In libsrtp 3 the SSRC is in host byte order: that call really removes the stream, and a
/// packet seen before is then accepted by a fresh stream.
#[test]
fn stream_removal_takes_the_ssrc_in_host_byte_order() {
    let (receiver, protected, unprotect) = protected_for_a_receiver(PROFILES[0], Packet::Rtp);
    let (status, plain, _) = receiver.run(unprotect, &protected, protected.len());
    assert_eq!(status, OK);
    assert_eq!(receiver.remove_stream(SSRC), OK, "the stream exists");
    let (status, again, _) = receiver.run(unprotect, &protected, protected.len());
    assert_eq!(status, OK, "a new stream takes the packet");
    assert_eq!(again, plain);
}

#[test]
fn a_key_that_does_not_match_the_profile_is_refused() {
    let aes = PROFILES[0];
    let gcm256 = PROFILES[3];
    let (key, salt) = aes.key_and_salt();
    // Wrong lengths at add_key.
    let policy = Policy::new(SSRC_ANY_INBOUND, gcm256);
    assert_eq!(policy.add_key(&key, &salt), BAD_PARAM);
    // Profile changed after add_key: srtp_create must check again.
    let policy = Policy::new(SSRC_ANY_INBOUND, aes);
    assert_eq!(policy.add_key(&key, &salt), OK);
    // SAFETY: a live policy.
    assert_eq!(unsafe { srtp_policy_set_profile(policy.0, gcm256.id) }, OK);
    assert_eq!(
        policy.create().err(),
        Some(BAD_PARAM),
        "an AES-CM key under an AES-256-GCM profile"
    );
}

#[test]
fn only_mki_index_zero_is_accepted() {
    let session = Session::new(SSRC_ANY_OUTBOUND, PROFILES[0]);
    let plain = rtp(100, 1);
    let mut out = vec![0u8; 400];
    let mut len = out.len();
    // SAFETY: valid buffers and capacity.
    let status = unsafe {
        srtp_protect(
            session.0,
            plain.as_ptr(),
            plain.len(),
            out.as_mut_ptr(),
            &mut len,
            1,
        )
    };
    assert_eq!(status, BAD_MKI);
}
