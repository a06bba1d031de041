#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;

fn encode(h: &LctHeader<'_>) -> Vec<u8> {
    let mut out = vec![0u8; LctHeader::MAX_LEN];
    let n = h.encode(&mut out).unwrap();
    out.truncate(n);
    out
}

#[test]
fn minimal_header() {
    let h = LctHeader::new(0, 0, 0);
    assert_eq!(encode(&h), [0x10, 0x00, 2, 0, 0, 0, 0, 0]);
}

#[test]
fn field_sizes_are_shortest() {
    // (tsi, toi, byte 1 flags, id bytes)
    let cases: &[(u64, u128, u8, &[u8])] = &[
        (0, 0, 0x00, &[]),
        // H alone: 16-bit TSI and TOI.
        (0xabcd, 0x1234, 0x10, &[0xab, 0xcd, 0x12, 0x34]),
        // S=1 O=0 H=0: 32-bit TSI, no TOI.
        (0x0102_0304, 0, 0x80, &[1, 2, 3, 4]),
        // S=0 O=1: 32-bit TOI.
        (0, 0x0102_0304, 0x20, &[1, 2, 3, 4]),
        // 17-bit TOI with 16-bit TSI: S=1 O=1 (64 bits) beats H (S=1 O=1 H=1).
        (1, 0x1_0000, 0xa0, &[0, 0, 0, 1, 0, 1, 0, 0]),
        // 48-bit TSI: S=1 H=1, TOI 16 bits.
        (0x0102_0304_0506, 7, 0x90, &[1, 2, 3, 4, 5, 6, 0, 7]),
        // 64-bit TOI: O=2.
        (0, 0x0102_0304_0506_0708, 0x40, &[1, 2, 3, 4, 5, 6, 7, 8]),
        // 112-bit TOI: O=3 H=1 (with a 16-bit TSI slot).
        (
            5,
            LctHeader::MAX_TOI,
            0x70,
            &[
                0, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff,
            ],
        ),
    ];
    for (tsi, toi, flags, ids) in cases {
        let h = LctHeader::new(*tsi, *toi, 6);
        let bytes = encode(&h);
        let mut expected = vec![0x10, *flags, ((8 + ids.len()) / 4) as u8, 6, 0, 0, 0, 0];
        expected.extend_from_slice(ids);
        assert_eq!(bytes, expected, "tsi {tsi:#x} toi {toi:#x}");
        assert_eq!(LctHeader::decode(&bytes).unwrap(), (h, bytes.len()));
    }
}

#[test]
fn flags_psi_and_cci() {
    let mut h = LctHeader::new(1, 1, 0);
    h.psi = 2;
    h.close_session = true;
    h.close_object = true;
    h.cci = Cci::new(0x0102_0304_0506_0708_090a_0b0c, 3).unwrap();
    assert_eq!(
        encode(&h),
        [
            0x1a, 0x13, 5, 0, // V=1 C=2 PSI=2 | H A B
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, // CCI 96 bits
            0, 1, 0, 1, // TSI, TOI
        ]
    );
    assert!(Cci::new(1 << 32, 1).is_err());
    assert!(Cci::new(0, 5).is_err());
    assert!(Cci::new(u128::MAX, 4).is_ok());
}

#[test]
fn fdt_cenc_and_time_extensions() {
    let time = ExtTime::sender_current_time_payload(NtpTimestamp {
        seconds: 0xe000_0001,
        fraction: 0x8000_0000,
    });
    let list = [
        Extension::Fdt(ExtFdt::new(FluteVersion::V2, 0xabcde).unwrap()),
        Extension::Cenc(ContentEncoding::Gzip),
        Extension::Time(ExtTime::new(&time).unwrap()),
    ];
    let mut h = LctHeader::new(0, 0, 0);
    h.extensions = Extensions::from_list(&list);
    let bytes = encode(&h);
    assert_eq!(
        bytes,
        [
            0x10, 0, 7, 0, 0, 0, 0, 0, // fixed
            192, 0x2a, 0xbc, 0xde, // EXT_FDT V=2 id 0xabcde
            193, 3, 0, 0, // EXT_CENC gzip
            2, 3, 0xc0, 0, 0xe0, 0, 0, 1, 0x80, 0, 0, 0, // EXT_TIME SCT hi+lo
        ]
    );
    let (d, _) = LctHeader::decode(&bytes).unwrap();
    assert_eq!(d, h);
    let e = d.extensions;
    assert_eq!(e.fdt().unwrap().instance_id(), 0xabcde);
    assert_eq!(e.fdt().unwrap().version(), FluteVersion::V2);
    assert_eq!(e.cenc(), Some(ContentEncoding::Gzip));
    let t = e.time().unwrap();
    assert_eq!(
        t.sender_current_time(),
        Some(NtpTimestamp {
            seconds: 0xe000_0001,
            fraction: 0x8000_0000
        })
    );
    assert_eq!(t.expected_residual_time(), None);
    assert_eq!(e.unknown_count(), 0);
}

#[test]
fn ext_time_fields_in_order() {
    // ERT and SLC only.
    let p = [0x30, 0, 0, 0, 0, 9, 0, 0, 0, 10];
    let t = ExtTime::new(&p).unwrap();
    assert_eq!(t.sender_current_time(), None);
    assert_eq!(t.expected_residual_time(), Some(9));
    assert_eq!(t.session_last_changed(), Some(10));
    // Flags announce more than the payload holds.
    assert!(ExtTime::new(&[0xf0, 0, 0, 0, 0, 1]).is_err());
    assert!(ExtTime::new(&[0, 0, 0]).is_err());
}

#[test]
fn fti_no_code_bytes() {
    let list = [Extension::Fti(Fti::NoCode(
        NoCodeFti::new(0x0102_0304_0506, 1400, 0x0a0b_0c0d).unwrap(),
    ))];
    let mut h = LctHeader::new(0, 0, 0);
    h.extensions = Extensions::from_list(&list);
    let bytes = encode(&h);
    assert_eq!(
        &bytes[8..],
        [
            64, 4, 1, 2, 3, 4, 5, 6, 0, 0, 0x05, 0x78, 0x0a, 0x0b, 0x0c, 0x0d
        ]
    );
    assert_eq!(LctHeader::decode(&bytes).unwrap().0, h);
    // The same bytes under codepoint 6 are read as RaptorQ and fail
    // (T = 0 there).
    let mut raptorq = bytes.clone();
    raptorq[3] = 6;
    assert!(matches!(
        LctHeader::decode(&raptorq),
        Err(LctError::InvalidFti { .. })
    ));
    // Under an unknown codepoint it is kept as an unknown extension.
    let mut other = bytes;
    other[3] = 2;
    let (d, _) = LctHeader::decode(&other).unwrap();
    assert_eq!(d.extensions.fti(), None);
    assert_eq!(d.extensions.unknown_count(), 1);
    assert_eq!(encode(&d), other);
}

#[test]
fn fti_raptorq_validation() {
    assert!(RaptorQFti::new(1, 0, 1, 1, 1).is_err());
    assert!(RaptorQFti::new(1, 8, 0, 1, 1).is_err());
    assert!(RaptorQFti::new(1, 8, 1, 0, 1).is_err());
    assert!(RaptorQFti::new(1, 8, 1, 1, 0).is_err());
    assert!(RaptorQFti::new(1, 10, 1, 1, 4).is_err());
    assert!(RaptorQFti::new(1 << 40, 8, 1, 1, 4).is_err());
    let ok = RaptorQFti::new((1 << 40) - 1, 8, 1, 1, 4).unwrap();
    assert_eq!(ok.transfer_length(), (1 << 40) - 1);
    // Al = 0 on the wire.
    let mut bytes = vec![0x10, 0, 6, 6, 0, 0, 0, 0];
    bytes.extend_from_slice(&[64, 4, 0, 0, 0, 0, 1, 0, 0, 8, 1, 0, 1, 0, 0, 0]);
    assert!(matches!(
        LctHeader::decode(&bytes),
        Err(LctError::InvalidFti { .. })
    ));
    bytes[21] = 4;
    assert!(LctHeader::decode(&bytes).is_ok());
}

#[test]
fn fti_layout_must_match_codepoint() {
    let list = [Extension::Fti(Fti::NoCode(
        NoCodeFti::new(1, 1, 1).unwrap(),
    ))];
    let mut h = LctHeader::new(0, 0, 6);
    h.extensions = Extensions::from_list(&list);
    let mut out = [0u8; 64];
    assert_eq!(
        h.encode(&mut out),
        Err(LctError::FtiCodepointMismatch { codepoint: 6 })
    );
}

#[test]
fn unknown_extensions_are_skipped_and_kept() {
    let mut bytes = vec![0x10, 0, 6, 0, 0, 0, 0, 0];
    bytes.extend_from_slice(&[1, 2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]); // HET 1, HEL 2
    bytes.extend_from_slice(&[200, 1, 2, 3]); // fixed-size HET 200
    bytes.extend_from_slice(&[193, 0, 0, 0]); // EXT_CENC null
    let (h, len) = LctHeader::decode(&bytes).unwrap();
    assert_eq!(len, 24);
    let exts: Vec<_> = h.extensions.iter().collect();
    assert_eq!(
        exts,
        [
            Extension::Unknown(
                UnknownExtension::new(1, &[0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]).unwrap()
            ),
            Extension::Unknown(UnknownExtension::new(200, &[1, 2, 3]).unwrap()),
            Extension::Cenc(ContentEncoding::Null),
        ]
    );
    assert_eq!(h.extensions.unknown_count(), 2);
    assert_eq!(encode(&h), bytes);
    assert!(UnknownExtension::new(192, &[0, 0, 0]).is_err());
    assert!(UnknownExtension::new(1, &[0; 3]).is_err());
    assert!(UnknownExtension::new(130, &[0; 2]).is_err());
}

#[test]
fn malformed_headers() {
    assert_eq!(
        LctHeader::decode(&[0x10, 0, 2]),
        Err(LctError::Truncated {
            needed: 4,
            available: 3
        })
    );
    assert_eq!(
        LctHeader::decode(&[0x20, 0, 2, 0, 0, 0, 0, 0]),
        Err(LctError::UnsupportedVersion(2))
    );
    assert_eq!(
        LctHeader::decode(&[0x10, 0, 1, 0, 0, 0, 0, 0]),
        Err(LctError::HeaderLengthTooShort {
            hdr_len: 4,
            minimum: 8
        })
    );
    assert_eq!(
        LctHeader::decode(&[0x10, 0, 3, 0, 0, 0, 0, 0]),
        Err(LctError::Truncated {
            needed: 12,
            available: 8
        })
    );
    // HEL 0.
    assert_eq!(
        LctHeader::decode(&[0x10, 0, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0]),
        Err(LctError::ZeroHeaderExtensionLength { het: 1 })
    );
    // HEL 2 but only one word left in HDR_LEN (the datagram is longer).
    assert_eq!(
        LctHeader::decode(&[0x10, 0, 3, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0]),
        Err(LctError::ExtensionOverrun { het: 1 })
    );
    // EXT_FDT with FLUTE version 3; EXT_CENC 4; EXT_FTI with HEL 3.
    assert_eq!(
        LctHeader::decode(&[0x10, 0, 3, 0, 0, 0, 0, 0, 192, 0x30, 0, 0]),
        Err(LctError::UnsupportedFluteVersion(3))
    );
    assert_eq!(
        LctHeader::decode(&[0x10, 0, 3, 0, 0, 0, 0, 0, 193, 4, 0, 0]),
        Err(LctError::UnknownContentEncoding(4))
    );
    let mut bytes = vec![0x10, 0, 5, 0, 0, 0, 0, 0, 64, 3];
    bytes.resize(20, 0);
    assert!(matches!(
        LctHeader::decode(&bytes),
        Err(LctError::InvalidExtensionLength { het: 64, .. })
    ));
}

#[test]
fn encode_rejects_out_of_range() {
    let mut out = [0u8; 64];
    assert_eq!(
        LctHeader::new(1 << 48, 0, 0).encode(&mut out),
        Err(LctError::FieldOutOfRange { field: "TSI" })
    );
    assert_eq!(
        LctHeader::new(0, 1 << 112, 0).encode(&mut out),
        Err(LctError::FieldOutOfRange { field: "TOI" })
    );
    let mut h = LctHeader::new(0, 0, 0);
    h.psi = 4;
    assert!(h.encode(&mut out).is_err());
    assert!(matches!(
        LctHeader::new(0, 0, 0).encode(&mut out[..7]),
        Err(LctError::BufferTooSmall {
            needed: 8,
            available: 7
        })
    ));
    assert!(ExtFdt::new(FluteVersion::V1, 1 << 20).is_err());
}

fn arb_extension() -> impl Strategy<Value = (u8, Vec<u8>)> {
    // (kind, raw material); turned into an Extension borrowing the Vec.
    (0u8..6, proptest::collection::vec(any::<u8>(), 0..40))
}

fn make_extension(kind: u8, raw: &[u8], codepoint: u8) -> Option<Extension<'_>> {
    let b = |i: usize| raw.get(i).copied().unwrap_or(1);
    match kind {
        0 => Some(Extension::Fdt(
            ExtFdt::new(
                if b(0) % 2 == 0 {
                    FluteVersion::V1
                } else {
                    FluteVersion::V2
                },
                u32::from_be_bytes([0, b(1) & 0xf, b(2), b(3)]),
            )
            .ok()?,
        )),
        1 => ContentEncoding::from_code(b(0) % 4).map(Extension::Cenc),
        2 => {
            let len = 2 + 4 * (raw.len() / 4).min(8);
            let mut payload = raw.get(..len)?;
            if ExtTime::new(payload).is_err() {
                payload = &raw[..2.min(raw.len())];
            }
            ExtTime::new(payload).ok().map(Extension::Time)
        }
        3 => {
            let f = u64::from_be_bytes([0, 0, 0, b(0), b(1), b(2), b(3), b(4)]);
            let fti = if codepoint == CODEPOINT_RAPTORQ {
                let al = (b(5) % 8).max(1);
                let t = u16::from(al) * u16::from(b(6).max(1));
                Fti::RaptorQ(RaptorQFti::new(f, t, b(7).max(1), u16::from(b(8)).max(1), al).ok()?)
            } else {
                Fti::NoCode(NoCodeFti::new(f, u16::from(b(5)).max(1), u32::from(b(6)).max(1)).ok()?)
            };
            Some(Extension::Fti(fti))
        }
        4 => UnknownExtension::new(128 + b(0) % 64, raw.get(1..4)?)
            .ok()
            .map(Extension::Unknown),
        _ => {
            let het = b(0) % 64; // below 64, never a typed one except 2
            let len = 2 + 4 * (raw.len().saturating_sub(2) / 4);
            UnknownExtension::new(het, raw.get(..len)?)
                .ok()
                .map(Extension::Unknown)
        }
    }
}

proptest! {
    #[test]
    fn round_trip(
        tsi in 0u64..=LctHeader::MAX_TSI,
        toi_bits in 0u32..=112,
        toi_raw in any::<u128>(),
        cci_words in 1u8..=4,
        cci_raw in any::<u128>(),
        psi in 0u8..4,
        a in any::<bool>(),
        b in any::<bool>(),
        raptorq in any::<bool>(),
        exts in proptest::collection::vec(arb_extension(), 0..6),
    ) {
        let toi = if toi_bits == 0 { 0 } else { toi_raw >> (128 - toi_bits) };
        let cci = if cci_words == 4 { cci_raw } else { cci_raw >> (128 - 32 * u32::from(cci_words)) };
        let codepoint = if raptorq { CODEPOINT_RAPTORQ } else { CODEPOINT_NO_CODE };
        let list: Vec<Extension<'_>> = exts
            .iter()
            .filter_map(|(k, raw)| make_extension(*k, raw, codepoint))
            .collect();
        let h = LctHeader {
            cci: Cci::new(cci, cci_words).unwrap(),
            psi,
            tsi,
            toi,
            close_session: a,
            close_object: b,
            codepoint,
            extensions: Extensions::from_list(&list),
        };
        let bytes = encode(&h);
        prop_assert_eq!(bytes.len(), h.encoded_len().unwrap());
        prop_assert_eq!(bytes.len() % 4, 0);
        let (d, len) = LctHeader::decode(&bytes).unwrap();
        prop_assert_eq!(len, bytes.len());
        prop_assert_eq!(d, h);
        // Re-encoding the decoded (wire-backed) header gives the same bytes.
        prop_assert_eq!(encode(&d), bytes);
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = LctHeader::decode(&bytes);
    }

    #[test]
    fn decode_never_panics_with_valid_prefix(
        b1 in any::<u8>(),
        hdr_len in 0u8..40,
        cp in any::<u8>(),
        mut rest in proptest::collection::vec(any::<u8>(), 0..160),
    ) {
        rest.splice(0..0, [0x10, b1, hdr_len, cp]);
        if let Ok((h, _)) = LctHeader::decode(&rest) {
            for e in h.extensions.iter() {
                let _ = e.encoded_len();
            }
        }
    }
}

#[test]
fn fti_raptor_bytes_follow_rfc_5053() {
    // RFC 5053 §3.2: F (48) | reserved (16) | T (16) | Z (16) | N (8) | Al (8).
    let list = [Extension::Fti(Fti::Raptor(
        RaptorFti::new(0x1234_5678_9abc, 1400, 0x0102, 2, 4).unwrap(),
    ))];
    let mut h = LctHeader::new(0, 0, CODEPOINT_RAPTOR);
    h.extensions = Extensions::from_list(&list);
    let bytes = encode(&h);
    assert_eq!(
        &bytes[8..],
        [
            64, 4, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0, 0, 0x05, 0x78, 0x01, 0x02, 2, 4
        ]
    );
    assert_eq!(LctHeader::decode(&bytes).unwrap().0, h);
    let Some(Fti::Raptor(fti)) = LctHeader::decode(&bytes).unwrap().0.extensions.fti() else {
        panic!("Raptor FTI expected");
    };
    // Valid on the wire, but 0x1234_5678_9abc / 1400 symbols in 258 blocks
    // is more than 8192 a block: the fec crate refuses it.
    assert!(matches!(
        Fti::Raptor(fti).to_oti(),
        Err(dms_fec::OtiError::BlockTooLarge { .. })
    ));
    let fti = Fti::Raptor(RaptorFti::new(1_000_000, 1400, 2, 2, 4).unwrap());
    let oti = fti.to_oti().unwrap();
    assert_eq!(oti.scheme(), dms_fec::FecScheme::Raptor);
    assert_eq!((oti.source_blocks(), oti.sub_blocks()), (2, 2));
    assert_eq!(Fti::from_oti(&oti).unwrap(), fti);
    // A Raptor FTI under the RaptorQ codepoint is refused when written.
    let mut wrong = LctHeader::new(0, 0, CODEPOINT_RAPTORQ);
    wrong.extensions = Extensions::from_list(&list);
    let mut buf = [0u8; 64];
    assert!(wrong.encode(&mut buf).is_err());
    assert!(RaptorFti::new(1, 0, 1, 1, 1).is_err());
    assert!(RaptorFti::new(1, 8, 0, 1, 4).is_err());
    assert!(RaptorFti::new(1, 8, 1, 0, 4).is_err());
    assert!(RaptorFti::new(1, 10, 1, 1, 4).is_err());
    assert!(RaptorFti::new(1 << 48, 8, 1, 1, 4).is_err());
}
