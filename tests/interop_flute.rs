//! Interoperability with another FLUTE implementation, the published
//! `flute` crate, over loopback multicast, both ways:
//!
//! - their sender → our `dms_flute::Receiver`: FEC 0, 1 (Raptor, with and
//!   without sub-blocks) and 6, FLUTE v1 and v2, in-band EXT_FTI or FDT
//!   only, their TS 26.346 L.6.1 FDT profile, 112-bit TOIs, with 5 % of
//!   packets dropped and with reordering (seeded, in the application);
//! - our `dms_flute::Sender` → their receiver: FEC 0, 1 (with and without
//!   sub-blocks) and 6, FLUTE v1 and v2.
//!
//! Each session carries files of 1 byte, T−1, T+1 and several MiB. Every
//! object must arrive byte-exact, with its Content-MD5 checked on the
//! receiving side. Senders are paced; the margin against the loss of a
//! busy loopback is RaptorQ repair or carousel repeats for no-code FEC.
//! The tests run one at a time (they share the machine's loopback).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::sync::Mutex;

use dms_fec::FecScheme;
use dms_flute::lct::FluteVersion;
use dms_flute::receiver::Verification;
use flute::sender::{FdtXmlProfile, Profile};

use support::impair::Impairment;
use support::ours::{self, OurReceiverRun, OurSendOptions};
use support::theirs::{self, TheirFec, TheirSendOptions};
use support::{TestFile, edge_case_files, group, raptor_edge_case_files, sockets};

/// One test at a time: parallel senders on a 2-core machine only add loss.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------
// Their sender → our receiver
// ---------------------------------------------------------------------

/// Sends `files` with their sender and receives them with ours through
/// `impairment`.
fn theirs_to_ours(
    port: u16,
    files: &[TestFile],
    options: TheirSendOptions,
    impairment: Impairment,
) -> OurReceiverRun {
    let group = group(port);
    let (send_socket, receive_socket) = sockets(group);
    let receiver = ours::spawn_receiver(receive_socket, files.len(), impairment);
    theirs::send(&send_socket, group, 7, files, options);
    receiver.join().unwrap()
}

/// Every file arrived byte-exact under its Content-Location; its
/// Content-MD5, once the FDT described it, was verified.
fn assert_ours_received(run: &OurReceiverRun, files: &[TestFile]) {
    assert!(run.failed.is_empty(), "objects failed: {:?}", run.failed);
    assert!(run.fdt_instances > 0, "no FDT Instance applied: {run:?}");
    for file in files {
        let location = file.location();
        let Some(object) = run.object(&location) else {
            panic!(
                "{location} was not completed with its Content-Location; stats: {:?}",
                run.stats
            );
        };
        assert!(
            object.data == file.data,
            "{location}: {} bytes received, {} sent, contents differ",
            object.data.len(),
            file.data.len()
        );
        assert_eq!(object.described_md5, Some(file.md5()), "{location}");
        assert_eq!(object.md5, Verification::Verified, "{location}");
    }
    assert_eq!(run.completed.len(), files.len());
}

fn their_options(fec: TheirFec, profile: Profile, inband_fti: bool) -> TheirSendOptions {
    TheirSendOptions {
        fec,
        profile,
        // No-code FEC has no repair: its margin is repeats of the object.
        transfers: if fec == TheirFec::NoCode { 3 } else { 1 },
        inband_fti,
        fdt_profile: FdtXmlProfile::Extended,
        first_toi: 1,
    }
}

const THEIR_RAPTORQ: TheirFec = TheirFec::RaptorQ { repair_percent: 30 };

/// Raptor with N sub-blocks; its GF(2) code needs a few symbols past K
/// more often than RaptorQ, which 30 % repair covers.
const fn their_raptor(sub_blocks: u8) -> TheirFec {
    TheirFec::Raptor {
        repair_percent: 30,
        sub_blocks,
    }
}

#[test]
fn their_nocode_v2_to_our_receiver() {
    let _serial = serial();
    let files = edge_case_files(3 * MIB + 17, 100);
    let options = their_options(TheirFec::NoCode, Profile::RFC6726, false);
    let run = theirs_to_ours(47301, &files, options, Impairment::none());
    assert_ours_received(&run, &files);
}

#[test]
fn their_nocode_v1_inband_fti_112_bit_tois_to_our_receiver() {
    let _serial = serial();
    let files = edge_case_files(2 * MIB + 5, 200);
    let options = TheirSendOptions {
        // TOIs in the longest LCT encoding (O = 3, H = 1: 112 bits).
        first_toi: (1 << 111) + 0x0123_4567_89ab_cdef,
        ..their_options(TheirFec::NoCode, Profile::RFC3926, true)
    };
    let run = theirs_to_ours(47302, &files, options, Impairment::none());
    assert_ours_received(&run, &files);
}

#[test]
fn their_raptorq_v2_inband_fti_to_our_receiver() {
    let _serial = serial();
    let files = edge_case_files(4 * MIB + 3, 300);
    let options = their_options(THEIR_RAPTORQ, Profile::RFC6726, true);
    let run = theirs_to_ours(47303, &files, options, Impairment::none());
    assert_ours_received(&run, &files);
}

#[test]
fn their_raptorq_v1_to_our_receiver() {
    let _serial = serial();
    let files = edge_case_files(3 * MIB + 1, 400);
    let options = their_options(THEIR_RAPTORQ, Profile::RFC3926, false);
    let run = theirs_to_ours(47304, &files, options, Impairment::none());
    assert_ours_received(&run, &files);
}

#[test]
fn their_raptorq_ts26346_fdt_profile_to_our_receiver() {
    let _serial = serial();
    let files = edge_case_files(MIB + 21, 450);
    let options = TheirSendOptions {
        fdt_profile: FdtXmlProfile::Ts26346L6,
        ..their_options(THEIR_RAPTORQ, Profile::RFC6726, false)
    };
    let run = theirs_to_ours(47308, &files, options, Impairment::none());
    assert_ours_received(&run, &files);
}

#[test]
fn their_raptorq_to_our_receiver_with_five_percent_dropped() {
    let _serial = serial();
    let files = edge_case_files(4 * MIB + 9, 500);
    // FTI only in the FDT: objects wait for it, so every Content-MD5 is
    // known (and checked) however many FDT packets are dropped.
    let options = their_options(THEIR_RAPTORQ, Profile::RFC6726, false);
    let run = theirs_to_ours(47305, &files, options, Impairment::new(5, 0.05, 1));
    assert!(run.dropped > 0, "the impairment dropped nothing: {run:?}");
    assert_ours_received(&run, &files);
}

#[test]
fn their_raptor_v2_inband_fti_to_our_receiver() {
    let _serial = serial();
    let files = raptor_edge_case_files(3 * MIB + 7, 1300);
    let options = their_options(their_raptor(1), Profile::RFC6726, true);
    let run = theirs_to_ours(47331, &files, options, Impairment::none());
    assert_ours_received(&run, &files);
}

#[test]
fn their_raptor_v1_fdt_only_sub_blocks_to_our_receiver() {
    let _serial = serial();
    let files = raptor_edge_case_files(2 * MIB + 29, 1400);
    let options = their_options(their_raptor(4), Profile::RFC3926, false);
    let run = theirs_to_ours(47332, &files, options, Impairment::none());
    assert_ours_received(&run, &files);
}

#[test]
fn their_raptor_to_our_receiver_with_five_percent_dropped() {
    let _serial = serial();
    let files = raptor_edge_case_files(3 * MIB + 19, 1500);
    let options = their_options(their_raptor(1), Profile::RFC6726, false);
    let run = theirs_to_ours(47333, &files, options, Impairment::new(23, 0.05, 1));
    assert!(run.dropped > 0, "the impairment dropped nothing: {run:?}");
    assert_ours_received(&run, &files);
}

#[test]
fn their_raptorq_to_our_receiver_reordered() {
    let _serial = serial();
    let files = edge_case_files(3 * MIB + 11, 600);
    let options = their_options(THEIR_RAPTORQ, Profile::RFC6726, true);
    let run = theirs_to_ours(47306, &files, options, Impairment::new(6, 0.0, 64));
    assert_ours_received(&run, &files);
}

#[test]
fn their_nocode_to_our_receiver_reordered() {
    let _serial = serial();
    let files = edge_case_files(2 * MIB + 13, 700);
    let options = their_options(TheirFec::NoCode, Profile::RFC6726, false);
    let run = theirs_to_ours(47307, &files, options, Impairment::new(7, 0.0, 32));
    assert_ours_received(&run, &files);
}

// ---------------------------------------------------------------------
// Our sender → their receiver
// ---------------------------------------------------------------------

/// Sends `files` with our sender and receives them with theirs; every file
/// must be complete, MD5-checked and byte-exact.
fn ours_to_theirs(port: u16, files: &[TestFile], options: OurSendOptions) {
    let group = group(port);
    let (send_socket, receive_socket) = sockets(group);
    let expected = files.iter().map(TestFile::location).collect();
    let receiver = theirs::spawn_receiver(receive_socket, group, expected);
    ours::send(&send_socket, 9, files, options);
    let objects = receiver.join().unwrap();

    for file in files {
        let location = file.location();
        let complete: Vec<_> = objects
            .iter()
            .filter(|o| o.location == location && o.complete && !o.error)
            .collect();
        assert!(
            !complete.is_empty(),
            "{location} not completed by their receiver: {:?}",
            objects
                .iter()
                .map(|o| (&o.location, o.data.len(), o.complete, o.error))
                .collect::<Vec<_>>()
        );
        for object in complete {
            assert!(object.data == file.data, "{location}: contents differ");
            assert_eq!(
                object.md5.as_deref(),
                Some(theirs::md5_base64(&file.md5()).as_str()),
                "{location}: Content-MD5 as their receiver read it from our FDT"
            );
        }
    }
}

fn our_options(fec: FecScheme, version: FluteVersion, inband_fti: bool) -> OurSendOptions {
    OurSendOptions {
        fec,
        version,
        // No-code FEC has no repair: its margin is carousel rounds.
        rounds: if fec == FecScheme::NoCode { 3 } else { 1 },
        repair_percent: 30,
        inband_fti,
        raptor_sub_blocks: None,
    }
}

#[test]
fn our_nocode_v2_to_their_receiver() {
    let _serial = serial();
    let files = edge_case_files(3 * MIB + 17, 800);
    ours_to_theirs(
        47311,
        &files,
        our_options(FecScheme::NoCode, FluteVersion::V2, true),
    );
}

#[test]
fn our_nocode_v1_to_their_receiver() {
    let _serial = serial();
    let files = edge_case_files(2 * MIB + 5, 900);
    ours_to_theirs(
        47312,
        &files,
        our_options(FecScheme::NoCode, FluteVersion::V1, false),
    );
}

#[test]
fn our_raptorq_v2_to_their_receiver() {
    let _serial = serial();
    let files = edge_case_files(4 * MIB + 3, 1000);
    ours_to_theirs(
        47313,
        &files,
        our_options(FecScheme::RaptorQ, FluteVersion::V2, true),
    );
}

#[test]
fn our_raptorq_v1_fti_in_fdt_only_to_their_receiver() {
    let _serial = serial();
    let files = edge_case_files(3 * MIB + 1, 1100);
    ours_to_theirs(
        47314,
        &files,
        our_options(FecScheme::RaptorQ, FluteVersion::V1, false),
    );
}

#[test]
fn our_raptor_v2_to_their_receiver() {
    let _serial = serial();
    let files = raptor_edge_case_files(3 * MIB + 3, 1600);
    ours_to_theirs(
        47334,
        &files,
        our_options(FecScheme::Raptor, FluteVersion::V2, true),
    );
}

#[test]
fn our_raptor_v1_fti_in_fdt_only_to_their_receiver() {
    let _serial = serial();
    let files = raptor_edge_case_files(2 * MIB + 1, 1700);
    ours_to_theirs(
        47335,
        &files,
        our_options(FecScheme::Raptor, FluteVersion::V1, false),
    );
}

#[test]
fn our_raptor_sub_blocks_to_their_receiver() {
    let _serial = serial();
    let files = raptor_edge_case_files(2 * MIB + 77, 1800);
    let options = OurSendOptions {
        raptor_sub_blocks: Some(5),
        ..our_options(FecScheme::Raptor, FluteVersion::V2, true)
    };
    ours_to_theirs(47336, &files, options);
}
