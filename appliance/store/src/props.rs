//! WebDAV dead properties, keyed (node, namespace, name). They follow the node through moves
//! and are copied with it.

use crate::inner::Inner;
use crate::namespace;
use crate::records::{PropRec, Record};
use crate::tables::{DbResult, need_user};
use crate::{PropName, Result, StorePath, UserId};

pub(crate) fn get(
    inner: &Inner,
    user: UserId,
    path: &StorePath,
) -> Result<Vec<(PropName, Vec<u8>)>> {
    inner.read("reading properties", |t| {
        let root = need_user(&t.users, user)?.root;
        let (id, _) = namespace::need(&t.nodes, &t.children, root, path)?;
        let mut out = Vec::new();
        for item in t
            .props
            .range((id, "", "")..(id + 1, "", ""))
            .db("reading properties")?
        {
            let (key, value) = item.db("reading properties")?;
            let (_, namespace, name) = key.value();
            out.push((
                PropName {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                },
                PropRec::decode(value.value())?.0,
            ));
        }
        Ok(out)
    })
}

pub(crate) fn patch(
    inner: &Inner,
    user: UserId,
    path: &StorePath,
    set: &[(PropName, Vec<u8>)],
    remove: &[PropName],
) -> Result<()> {
    inner.write("writing properties", |t| {
        let root = need_user(&t.users, user)?.root;
        let (id, _) = namespace::need(&t.nodes, &t.children, root, path)?;
        for p in remove {
            t.props
                .remove((id, p.namespace.as_str(), p.name.as_str()))
                .db("removing a property")?;
        }
        for (p, value) in set {
            t.props
                .insert(
                    (id, p.namespace.as_str(), p.name.as_str()),
                    PropRec(value.clone()).encode()?.as_slice(),
                )
                .db("writing a property")?;
        }
        Ok(())
    })
}
