//! Endpoint records, secrets included.

use belter_common::EndpointId;

use super::{EndpointRecord, Store, StoreError};
use crate::codec::{decode, encode};

impl Store {
    /// Reads every endpoint, oldest first.
    pub(crate) fn endpoints(&self) -> Result<Vec<(EndpointId, EndpointRecord)>, StoreError> {
        let mut endpoints = Vec::new();
        for item in self.endpoints.iter() {
            let (key, bytes) = item?;
            let text = String::from_utf8_lossy(&key).into_owned();
            let id = EndpointId::parse(&text).map_err(|error| StoreError::CorruptKey {
                tree: "endpoints",
                detail: error.to_string(),
            })?;
            endpoints.push((id, decode(&bytes)?));
        }
        Ok(endpoints)
    }

    /// Writes an endpoint. The caller flushes before it confirms the change.
    pub(crate) fn put_endpoint(
        &self,
        id: &EndpointId,
        record: &EndpointRecord,
    ) -> Result<(), StoreError> {
        self.endpoints
            .insert(id.as_str().as_bytes(), encode(record)?)?;
        Ok(())
    }

    /// Removes an endpoint. The caller flushes before it confirms the change.
    pub(crate) fn remove_endpoint(&self, id: &EndpointId) -> Result<(), StoreError> {
        self.endpoints.remove(id.as_str().as_bytes())?;
        Ok(())
    }
}
