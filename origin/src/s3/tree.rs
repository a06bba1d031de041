//! The delta tree in the bucket: `PREFIX/deltas/KEY`. A PUT is atomic
//! (an object appears whole or not at all), so no temporary objects.

use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;

use bytes::Bytes;
use object_store::ObjectStoreExt;
use object_store::path::Path as StorePath;

use dms_repair::BlobReader;

use super::blobs::{delete, exists, list, open_reader};
use super::{S3Bucket, store_error};
use crate::deltas::{DeltaTree, TreeEntry};

/// The key prefix of the delta tree below the bucket's prefix.
const TREE: &str = "deltas";

/// A [`DeltaTree`] in an S3 bucket.
#[derive(Debug)]
pub struct S3Tree {
    bucket: S3Bucket,
}

impl S3Tree {
    /// The tree under `PREFIX/deltas/` of `bucket`.
    pub fn new(bucket: S3Bucket) -> Self {
        Self { bucket }
    }

    fn key(&self, key: &str) -> StorePath {
        self.bucket.location.key(&format!("{TREE}/{key}"))
    }
}

impl DeltaTree for S3Tree {
    fn clean_temp(&self) -> io::Result<()> {
        Ok(())
    }

    fn read(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        let store = self.bucket.store.clone();
        let key = self.key(key);
        self.bucket.bridge.run(async move {
            match store.get(&key).await {
                Ok(got) => Ok(Some(got.bytes().await.map_err(store_error)?.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(store_error(e)),
            }
        })?
    }

    fn write(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        let store = self.bucket.store.clone();
        let key = self.key(key);
        let payload = Bytes::copy_from_slice(bytes);
        self.bucket.bridge.run(async move {
            store
                .put(&key, payload.into())
                .await
                .map(|_| ())
                .map_err(store_error)
        })?
    }

    fn open(&self, key: &str) -> io::Result<Box<dyn BlobReader>> {
        Ok(Box::new(open_reader(&self.bucket, self.key(key))?))
    }

    fn exists(&self, key: &str) -> io::Result<bool> {
        exists(&self.bucket, &self.key(key))
    }

    fn list(&self, dir: &str) -> io::Result<Vec<TreeEntry>> {
        let prefix = self.key(dir);
        let depth = prefix.parts().count() + 1;
        Ok(list(&self.bucket, prefix)?
            .into_iter()
            .filter(|meta| meta.location.parts().count() == depth)
            .filter_map(|meta| {
                Some(TreeEntry {
                    name: meta.location.filename()?.to_owned(),
                    size: meta.size,
                    location: PathBuf::from(meta.location.as_ref()),
                })
            })
            .collect())
    }

    fn dirs(&self) -> io::Result<Vec<String>> {
        let root = self.bucket.location.key(TREE);
        let depth = root.parts().count();
        let mut out = BTreeSet::new();
        for meta in list(&self.bucket, root)? {
            if let Some(part) = meta.location.parts().nth(depth)
                && meta.location.parts().count() > depth + 1
            {
                out.insert(part.as_ref().to_owned());
            }
        }
        Ok(out.into_iter().collect())
    }

    fn remove(&self, key: &str) -> io::Result<()> {
        delete(&self.bucket, self.key(key))
    }

    fn remove_dir(&self, dir: &str) -> io::Result<()> {
        for meta in list(&self.bucket, self.key(dir))? {
            delete(&self.bucket, meta.location)?;
        }
        Ok(())
    }

    fn location(&self, key: &str) -> PathBuf {
        PathBuf::from(self.key(key).as_ref())
    }
}
