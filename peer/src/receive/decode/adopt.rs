//! The decode thread's side of [`Control::adopt`](crate::receive::Control::adopt):
//! an object learned otherwise than from the broadcast (e.g. a peer's
//! announcement) is described to the FLUTE receiver with a one-file FDT
//! Instance, as a resumed object is, and from then on is received (by
//! repair) like any other.

use std::time::Instant;

use dms_flute::fdt::{FdtFile, FdtInstance};
use dms_flute::lct::Fti;

use super::DecodeLoop;
use crate::receive::control::{AdoptError, AdoptedObject, ObjectGaps};

/// The FDT Instance ID under which an adopted object's description is
/// applied (as for resumed objects, it is not remembered as seen).
const ADOPT_INSTANCE_ID: u32 = 0;

impl DecodeLoop {
    /// Describes `object` as object `toi` of session `tsi` and returns
    /// what it needs (every block, all of its symbols).
    pub(super) fn adopt(
        &mut self,
        tsi: u64,
        toi: u128,
        object: AdoptedObject,
    ) -> Result<ObjectGaps, AdoptError> {
        if toi == 0
            || self.objects.contains_key(&(tsi, toi))
            || self.receiver.oti(tsi, toi).is_some()
            || self.receiver.file_description(tsi, toi).is_some()
        {
            return Err(AdoptError::InUse { tsi, toi });
        }
        let fti = Fti::from_oti(&object.oti).map_err(|e| AdoptError::Refused(e.to_string()))?;
        let mut file = FdtFile::new(object.content_location, toi);
        file.content_length = Some(object.content_length);
        file.content_type = object.content_type;
        file.content_encoding = object.content_encoding;
        file.sha256 = object.sha256;
        file.manifest = object.manifest_uri;
        file.set_fti(&fti);
        let mut fdt = FdtInstance::new(u32::MAX);
        fdt.files.push(file);
        let now = Instant::now();
        self.receiver
            .handle_fdt(now, tsi, ADOPT_INSTANCE_ID, fdt.to_xml().as_bytes())
            .map_err(|e| AdoptError::Refused(e.to_string()))?;
        if self.receiver.oti(tsi, toi) != Some(object.oti) {
            self.receiver.remove_object(tsi, toi);
            return Err(AdoptError::Refused(
                "FEC parameters beyond the receiver's limits".into(),
            ));
        }
        // ObjectStarted: tracked and reported Receiving.
        self.drain(now);
        tracing::info!(tsi, %toi, "adopted an object the broadcast did not carry here");
        self.gaps(tsi, toi)
            .ok_or_else(|| AdoptError::Refused("the receiver dropped the object".into()))
    }
}
