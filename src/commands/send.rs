//! `dms send FILE...`: sends files as one FLUTE session to a multicast
//! group, paced, and exits when the last carousel round is out.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use dms_fec::{BlockSize, FecScheme};
use dms_flute::lct::{ContentEncoding, FluteVersion};
use dms_flute::net::Interface;
use dms_flute::{ObjectSpec, Sender, SenderConfig};
use dms_origin::sessions::BlobCursor;
use dms_origin::transmit::{
    LiveStats, TransmitConfig, TransmitError, TransmitReport, Transmitter, ntp_expires,
};
use dms_repair::{BlobReader, FileBlob};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use md5::{Digest, Md5};
use sha2::Sha256;
use signal_hook::consts::SIGINT;

/// `EMSGSIZE` on Linux: a datagram larger than the path MTU.
const EMSGSIZE: i32 = 90;

/// Arguments of `dms send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Files to send; each object's Content-Location is `file:///<file name>`.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Destination multicast group and port (a unicast address works too).
    #[arg(long, value_name = "ADDR:PORT")]
    group: SocketAddr,
    /// Interface to send on: an IPv4 address (127.0.0.1 for this host
    /// only), an interface name or index, or `any` for the route's.
    /// Required, so that nothing goes out on a network by default.
    #[arg(long, value_parser = parse_interface)]
    iface: Interface,
    /// Rate in Mbit/s of UDP payload; 0 sends unpaced (for measurements
    /// only: receivers lose what they cannot keep up with).
    #[arg(long, default_value_t = 100.0, value_parser = parse_rate)]
    rate: f64,
    /// Forward error correction.
    #[arg(long, value_enum, default_value_t = Fec::Raptorq)]
    fec: Fec,
    /// Repair symbols per source block, in percent of K (RaptorQ, Raptor).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=1000))]
    repair: u32,
    /// Symbol size T in bytes (a multiple of 4 for RaptorQ and Raptor).
    #[arg(long, default_value_t = 1400, value_parser = clap::value_parser!(u16).range(1..))]
    symbol_size: u16,
    /// FLUTE version: 2 (RFC 6726) or 1 (RFC 3926, 3GPP MBMS).
    #[arg(long, default_value = "2", value_parser = parse_flute_version)]
    flute_version: FluteVersion,
    /// Transport Session Identifier (up to 48 bits).
    #[arg(long, default_value_t = 1)]
    tsi: u64,
    /// How many times the whole file list is sent.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    carousel: u32,
    /// Multicast TTL (hop limit for IPv6); 1 keeps packets on the link.
    #[arg(long, default_value_t = 1)]
    ttl: u32,
    /// Seconds between two FDT transmissions.
    #[arg(long, default_value_t = 1.0, value_parser = parse_seconds)]
    fdt_interval: f64,
    /// Largest source block in bytes (rounded down to whole symbols);
    /// default about 1 MiB.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_block_size: Option<u64>,
    /// Leave EXT_FTI off the data packets (the OTI is then only in the
    /// FDT, as in the 3GPP profile).
    #[arg(long)]
    no_inband_fti: bool,
    /// Compress each file before sending and signal its Content-Encoding.
    #[arg(long, value_enum, default_value_t = Encoding::None)]
    encoding: Encoding,
    /// Largest datagram in bytes (UDP payload); 1472 fits a 1500-byte MTU.
    #[arg(long, default_value_t = 1472, value_parser = clap::value_parser!(u64).range(128..=65_507))]
    datagram_size: u64,
    /// Send one datagram per system call instead of UDP GSO batches.
    #[arg(long)]
    no_gso: bool,
    /// No progress bars; only the summary line.
    #[arg(long, short)]
    quiet: bool,
}

/// FEC scheme names on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Fec {
    /// RaptorQ (RFC 6330), FEC Encoding ID 6.
    Raptorq,
    /// Raptor (RFC 5053), FEC Encoding ID 1: 3GPP MBMS download.
    Raptor,
    /// Compact No-Code (RFC 5445), FEC Encoding ID 0.
    Nocode,
}

/// Content encodings on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Encoding {
    /// Sent as is.
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// Raw DEFLATE (RFC 1951).
    Deflate,
}

fn parse_interface(s: &str) -> Result<Interface, String> {
    s.parse().map_err(|e: io::Error| e.to_string())
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!("{s:?} is not a rate in Mbit/s (a number ≥ 0)")),
    }
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r < 1e9 => Ok(r),
        _ => Err(format!("{s:?} is not a number of seconds > 0")),
    }
}

fn parse_flute_version(s: &str) -> Result<FluteVersion, String> {
    match s {
        "1" => Ok(FluteVersion::V1),
        "2" => Ok(FluteVersion::V2),
        _ => Err(format!("{s:?}: FLUTE version is 1 or 2")),
    }
}

/// An object ready to send: its transported bytes, and its digests when
/// they are known before sending starts.
struct Prepared {
    location: String,
    source: BlobCursor,
    content_length: u64,
    transfer_length: u64,
    /// MD5 and SHA-256 of the transported bytes (compressed files: made
    /// while compressing).
    digests: Option<([u8; 16], [u8; 32])>,
    /// A file sent as is, hashed once the session is set up, while a
    /// helper thread encodes its first blocks (see `run`).
    hash_later: Option<PathBuf>,
}

/// Runs `dms send`.
pub fn run(args: &SendArgs) -> anyhow::Result<()> {
    let mut locations = std::collections::HashSet::new();
    let mut objects = Vec::new();
    for path in &args.files {
        let prepared =
            prepare(path, args.encoding).with_context(|| format!("reading {}", path.display()))?;
        if !locations.insert(prepared.location.clone()) {
            bail!(
                "two files are named {:?}: Content-Locations must differ",
                prepared.location
            );
        }
        objects.push(prepared);
    }

    let rate_bps = (args.rate * 1e6).round() as u64;
    let transported: u64 = objects.iter().map(|o| o.transfer_length).sum();
    // The FDT stays valid for the session's expected length and an hour.
    let expected = if rate_bps > 0 {
        let bits = transported as f64 * 8.0 * (1.0 + f64::from(args.repair) / 100.0);
        Duration::from_secs_f64(bits * f64::from(args.carousel) / rate_bps as f64)
    } else {
        Duration::ZERO
    };
    let mut config = SenderConfig::new(args.tsi, ntp_expires(expected + Duration::from_secs(3600)));
    config.flute_version = args.flute_version;
    config.fdt_interval = Duration::from_secs_f64(args.fdt_interval);
    config.carousel_rounds = args.carousel;
    config.inband_fti = !args.no_inband_fti;
    config.max_datagram_size = usize::try_from(args.datagram_size)?;
    // With several rounds the repair symbols are kept (about repair % of
    // the files) so each block is encoded once: make room for all of them,
    // with a symbol per block (at most 256 RaptorQ blocks) for rounding up.
    let rounding = objects.len() as u64 * 256 * u64::from(args.symbol_size);
    config.repair_cache_bytes = config
        .repair_cache_bytes
        .max((u128::from(transported) * u128::from(args.repair) / 100) as u64 + rounding);
    let sender = Sender::new(config).context("FLUTE session")?;

    let mut transmit = TransmitConfig::new(args.group);
    transmit.socket.interface = args.iface;
    transmit.socket.ttl = args.ttl;
    transmit.rate_bps = rate_bps;
    transmit.gso = !args.no_gso;
    let mut transmitter = Transmitter::new(sender, transmit)?;

    let mut to_hash = Vec::new();
    for o in objects {
        let mut spec = ObjectSpec::new(o.location.clone(), o.source.clone());
        spec.fec = match args.fec {
            Fec::Raptorq => FecScheme::RaptorQ,
            Fec::Raptor => FecScheme::Raptor,
            Fec::Nocode => FecScheme::NoCode,
        };
        spec.repair_percent = args.repair;
        spec.symbol_size = args.symbol_size;
        if let Some(bytes) = args.max_block_size {
            spec.block_size = BlockSize::Bytes(bytes);
        }
        spec.content_encoding = match args.encoding {
            Encoding::None => None,
            Encoding::Gzip => Some(ContentEncoding::Gzip),
            Encoding::Deflate => Some(ContentEncoding::Deflate),
        };
        spec.content_length = Some(o.content_length);
        if let Some((md5, sha256)) = o.digests {
            spec.content_md5 = Some(md5);
            spec.sha256 = Some(sha256);
        }
        let toi = transmitter
            .add_object(spec)
            .with_context(|| format!("adding {}", o.location))?;
        transmitter.encode_ahead_from(toi, o.source);
        if let Some(path) = o.hash_later {
            to_hash.push((toi, path, o.transfer_length));
        }
    }
    // The FDT carries each file's Content-MD5 and SHA-256, so nothing goes
    // out before they are known; MD5 alone takes about 1.7 ms per MiB
    // here, and a helper thread encodes the first blocks meanwhile.
    transmitter.start_encoding_ahead()?;
    for (toi, path, len) in to_hash {
        let (hashed, md5, sha256) =
            hash_file(&path).with_context(|| format!("reading {}", path.display()))?;
        if hashed != len {
            bail!("{} changed while it was read", path.display());
        }
        transmitter.set_digests(
            toi,
            Some(md5.finalize().into()),
            Some(sha256.finalize().into()),
        )?;
    }

    // Ctrl-C stops the transmission (a second one exits at once).
    let interrupted = Arc::new(AtomicBool::new(false));
    for register in [
        signal_hook::flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(&interrupted)),
        signal_hook::flag::register(SIGINT, Arc::clone(&interrupted)),
    ] {
        register.context("installing the Ctrl-C handler")?;
    }
    let stop = transmitter.stop_handle();
    let live = transmitter.live_stats();
    let running = thread::spawn(move || transmitter.run());
    let progress = (!args.quiet).then(|| Progress::new(&live));
    while !running.is_finished() {
        if interrupted.load(Ordering::Relaxed) {
            stop.stop();
        }
        if let Some(p) = &progress {
            p.update(&live);
        }
        thread::sleep(Duration::from_millis(100));
    }
    let report = running
        .join()
        .map_err(|_| anyhow::anyhow!("the transmitter thread panicked"))?
        .map_err(|e| {
            let too_long = matches!(&e, TransmitError::Send { source, .. }
                if source.raw_os_error() == Some(EMSGSIZE));
            let e = anyhow::Error::from(e);
            if too_long {
                e.context("datagrams exceed the interface MTU: lower --datagram-size")
            } else {
                e
            }
        })?;
    if let Some(p) = &progress {
        p.finish(&live);
    }
    summary(args, &report, transported)?;
    let failed: Vec<String> = live
        .objects()
        .iter()
        .zip(&report.sender.objects)
        .filter(|(_, s)| s.failed)
        .map(|(p, _)| p.content_location().to_owned())
        .collect();
    if !failed.is_empty() {
        bail!("could not read: {}", failed.join(", "));
    }
    if report.stopped {
        bail!("interrupted before the end of the session");
    }
    Ok(())
}

/// Opens a file to send, or compresses it into a temporary file (and
/// hashes what is sent) if asked.
fn prepare(path: &Path, encoding: Encoding) -> anyhow::Result<Prepared> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .context("the file has no name usable in a URI")?;
    let location = format!("file:///{name}");
    let file = File::open(path)?;
    if !file.metadata()?.is_file() {
        bail!("not a regular file");
    }
    let (transported, content_length, digests, hash_later) = match encoding {
        Encoding::None => (file, None, None, Some(path.to_path_buf())),
        Encoding::Gzip | Encoding::Deflate => {
            let mut sha256 = Sha256::new();
            let mut md5 = Md5::new();
            let (temp, len) = compress(file, encoding, &mut sha256, &mut md5)?;
            let digests = (md5.finalize().into(), sha256.finalize().into());
            (temp, Some(len), Some(digests), None)
        }
    };
    let blob = FileBlob::from_file(transported)?;
    let transfer_length = blob.len();
    Ok(Prepared {
        location,
        source: BlobCursor::new(Box::new(blob)),
        content_length: content_length.unwrap_or(transfer_length),
        transfer_length,
        digests,
        hash_later,
    })
}

/// The length, MD5 and SHA-256 of a file, the two digests computed on two
/// threads (each reads the file; the second read comes from the page
/// cache): MD5 has no CPU instructions and would otherwise double the
/// time before the first packet of a large file.
fn hash_file(path: &Path) -> io::Result<(u64, Md5, Sha256)> {
    fn hash_with(path: &Path, mut update: impl FnMut(&[u8])) -> io::Result<u64> {
        let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
        let mut len = 0u64;
        loop {
            let chunk = reader.fill_buf()?;
            if chunk.is_empty() {
                return Ok(len);
            }
            update(chunk);
            let n = chunk.len();
            len += n as u64;
            reader.consume(n);
        }
    }
    std::thread::scope(|scope| {
        let md5_thread = scope.spawn(|| {
            let mut md5 = Md5::new();
            hash_with(path, |chunk| md5.update(chunk)).map(|len| (len, md5))
        });
        let mut sha256 = Sha256::new();
        let sha_len = hash_with(path, |chunk| sha256.update(chunk))?;
        let (md5_len, md5) = md5_thread
            .join()
            .map_err(|_| io::Error::other("the MD5 thread panicked"))??;
        if md5_len != sha_len {
            return Err(io::Error::other("the file changed while it was hashed"));
        }
        Ok((sha_len, md5, sha256))
    })
}

/// Compresses `file` into an unnamed temporary file (deleted when closed):
/// the FDT goes out before the data, so Content-MD5 of the transported
/// (compressed) bytes must be known before sending. Returns the temporary
/// file and the original length.
fn compress(
    file: File,
    encoding: Encoding,
    sha256: &mut Sha256,
    md5: &mut Md5,
) -> anyhow::Result<(File, u64)> {
    let temp = tempfile::tempfile().context("creating a temporary file")?;
    let out = HashingWriter {
        inner: io::BufWriter::new(temp),
        md5,
    };
    let level = flate2::Compression::default();
    let (out, len) = match encoding {
        Encoding::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(out, level);
            let len = copy_hashing(&file, &mut encoder, sha256)?;
            (encoder.finish()?, len)
        }
        Encoding::Deflate => {
            let mut encoder = flate2::write::DeflateEncoder::new(out, level);
            let len = copy_hashing(&file, &mut encoder, sha256)?;
            (encoder.finish()?, len)
        }
        Encoding::None => bail!("no encoding to apply"),
    };
    let temp = out
        .inner
        .into_inner()
        .map_err(io::IntoInnerError::into_error)?;
    Ok((temp, len))
}

/// Copies `from` into `to`, hashing what is read; returns the bytes copied.
fn copy_hashing(from: impl Read, to: &mut impl Write, sha256: &mut Sha256) -> io::Result<u64> {
    let mut reader = BufReader::with_capacity(1 << 20, from);
    let mut len = 0u64;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(len);
        }
        sha256.update(chunk);
        to.write_all(chunk)?;
        let n = chunk.len();
        len += n as u64;
        reader.consume(n);
    }
}

/// A writer that computes the MD5 of what passes through.
struct HashingWriter<'a, W> {
    inner: W,
    md5: &'a mut Md5,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.md5.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Progress bars, one per object, fed from the live counters.
struct Progress {
    bars: Vec<ProgressBar>,
    _multi: MultiProgress,
}

impl Progress {
    fn new(live: &Arc<LiveStats>) -> Self {
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template(
            "{prefix:>24.bold} [{bar:40}] {percent:>3}% {pos}/{len} packets {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bars = live
            .objects()
            .iter()
            .map(|o| {
                let bar = multi.add(ProgressBar::new(o.expected_packets()));
                bar.set_style(style.clone());
                let name = o.content_location().trim_start_matches("file:///");
                bar.set_prefix(name.chars().take(24).collect::<String>());
                bar
            })
            .collect();
        Progress {
            bars,
            _multi: multi,
        }
    }

    fn update(&self, live: &Arc<LiveStats>) {
        for (bar, o) in self.bars.iter().zip(live.objects()) {
            bar.set_position(o.packets());
        }
    }

    fn finish(&self, live: &Arc<LiveStats>) {
        self.update(live);
        for bar in &self.bars {
            bar.finish();
        }
    }
}

/// The one-line summary on stdout.
fn summary(args: &SendArgs, report: &TransmitReport, transported: u64) -> io::Result<()> {
    let rate = if args.rate > 0.0 {
        format!("set {} Mbit/s", args.rate)
    } else {
        "unpaced".to_owned()
    };
    let fec = match args.fec {
        Fec::Raptorq => format!("raptorq +{} %", args.repair),
        Fec::Raptor => format!("raptor +{} %", args.repair),
        Fec::Nocode => "nocode".to_owned(),
    };
    writeln!(
        io::stdout().lock(),
        "sent {} file(s), {} bytes, to {} (TSI {}): {} packets, {} bytes in {:.3} s, {:.1} Mbit/s ({rate}), {fec}, {} round(s){}",
        args.files.len(),
        transported,
        args.group,
        args.tsi,
        report.packets,
        report.bytes,
        report.elapsed.as_secs_f64(),
        report.mbit_per_sec(),
        args.carousel,
        if report.stopped { ", stopped" } else { "" },
    )
}
