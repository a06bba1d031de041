//! `dms keygen`: a new manifest signing key in a data directory.

use std::path::PathBuf;

use clap::Args;

/// Arguments of `dms keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Data directory: writes origin.key (PKCS#8 PEM, mode 0600) and origin.pub (PEM).
    #[arg(long)]
    data: PathBuf,
    /// Replace an existing key (manifests signed before no longer verify with the new one).
    #[arg(long)]
    force: bool,
}

/// Runs `dms keygen`; prints the public key.
pub fn run_keygen(args: KeygenArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data)?;
    let key = dms_origin::keys::generate(&args.data, args.force)?;
    eprintln!(
        "wrote {} and {}",
        dms_origin::keys::private_key_path(&args.data).display(),
        dms_origin::keys::public_key_path(&args.data).display()
    );
    print!(
        "{}",
        dms_repair::manifest::public_key_to_pem(&key.verifying_key())?
    );
    Ok(())
}
