//! COPY and MOVE (RFC 4918 §9.8, §9.9).

use http::{Response, StatusCode};

use crate::body::DavBody;
use crate::conditional;
use crate::handler::{DavHandler, LockNeed, Req, created, no_content};
use crate::headers::{self, Depth};
use crate::status::{DavError, Op};

impl DavHandler {
    pub(crate) async fn transfer(
        &self,
        req: Req,
        is_move: bool,
    ) -> Result<Response<DavBody>, DavError> {
        let destination = req
            .headers
            .get("destination")
            .ok_or_else(|| DavError::bad_request("Destination header missing"))?
            .to_str()
            .map_err(|_| DavError::bad_request("Destination is not ASCII"))?;
        let to = self
            .inner
            .mount
            .resolve_url(destination)
            .map_err(|e| e.into_destination_error())?;
        let overwrite = headers::overwrite(&req.headers)?;
        let recursive = match (is_move, headers::depth(&req.headers)?) {
            (_, None | Some(Depth::Infinity)) => true,
            (false, Some(Depth::Zero)) => false,
            _ => {
                return Err(DavError::bad_request(if is_move {
                    "MOVE needs Depth: infinity"
                } else {
                    "COPY needs Depth: 0 or infinity"
                }));
            }
        };
        if to == req.path {
            return Err(DavError::new(
                StatusCode::FORBIDDEN,
                "source and destination are the same",
            ));
        }
        if req.path.is_root() || to.is_root() {
            return Err(DavError::new(
                StatusCode::FORBIDDEN,
                "cannot copy or move the root",
            ));
        }
        if req.path.contains(&to) {
            return Err(DavError::new(
                StatusCode::FORBIDDEN,
                "cannot copy or move a collection into itself",
            ));
        }
        let from = req.path.clone();
        self.blocking(move |inner| {
            let source = inner.store.stat(req.user, &from)?;
            conditional::require(&req.headers, Some(&source))?;
            let existing = inner.stat_opt(req.user, &to)?;
            if existing.is_some() && !overwrite {
                return Err(DavError::new(
                    StatusCode::PRECONDITION_FAILED,
                    "destination exists and Overwrite is F",
                ));
            }
            match to.parent().map(|p| inner.stat_opt(req.user, &p)) {
                Some(Ok(Some(parent))) if parent.is_dir() => {}
                Some(Err(err)) => return Err(err),
                _ => {
                    return Err(DavError::new(
                        StatusCode::CONFLICT,
                        "the destination's parent collection does not exist",
                    ));
                }
            }
            let mut needs = vec![LockNeed {
                path: to.clone(),
                tree: true,
                membership: existing.is_none(),
            }];
            if is_move {
                needs.push(LockNeed {
                    path: from.clone(),
                    tree: true,
                    membership: true,
                });
            }
            inner.check_locks(&req, &needs)?;
            let outcome = if is_move {
                inner.store.rename(req.user, &from, &to, overwrite)
            } else {
                inner.store.copy(req.user, &from, &to, overwrite, recursive)
            }
            .map_err(|e| DavError::store(Op::Transfer, e))?;
            if is_move {
                // Locks belong to URLs: the moved resources are no longer under them.
                inner.locks.release_tree(req.user, &from);
            }
            Ok(if outcome.replaced || existing.is_some() {
                no_content()
            } else {
                created()
            })
        })
        .await
    }
}
