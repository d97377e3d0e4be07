//! Which calls a host may have carried out on this host's nodes.

use super::*;

fn host(id: &str) -> HostId {
    HostId::parse(id).expect("a valid host id")
}

fn caller(id: &str, node: u32) -> Lent {
    Lent {
        host: host(id),
        link: 1,
        node: NodeId(node),
        orphaned_until: None,
    }
}

fn router() -> RouterId {
    RouterId(uuid::Uuid::new_v4())
}

fn create(router: RouterId) -> Request {
    call::CreateRouter { router, worker: 0 }.into()
}

#[test]
fn a_host_may_drive_only_the_routers_it_created_on_that_node() {
    let mut lent = HashMap::new();
    let r = router();
    assert_eq!(authorize(&mut lent, caller("h1", 1), &create(r)), Ok(()));
    let close: Request = call::CloseRouter { router: r }.into();
    assert_eq!(authorize(&mut lent, caller("h1", 1), &close), Ok(()));
    // Another host, or the same host naming another node, is refused.
    let refused = authorize(&mut lent, caller("h3", 1), &close).expect_err("not h3's");
    assert_eq!(refused.code, NodeErrorCode::NotFound);
    assert!(authorize(&mut lent, caller("h1", 2), &close).is_err());
    // A router this host's own rooms use was never lent: refused too.
    let own: Request = call::CloseRouter { router: router() }.into();
    assert!(authorize(&mut lent, caller("h1", 1), &own).is_err());
}

#[test]
fn a_router_id_already_lent_cannot_be_created_again() {
    let mut lent = HashMap::new();
    let r = router();
    assert_eq!(authorize(&mut lent, caller("h1", 1), &create(r)), Ok(()));
    let again = authorize(&mut lent, caller("h3", 1), &create(r)).expect_err("taken");
    assert_eq!(again.code, NodeErrorCode::InvalidArgument);
    assert_eq!(lent[&r].host, host("h1"), "the first creator keeps it");
}

#[test]
fn a_pipe_within_the_node_must_target_a_router_of_the_same_host() {
    let mut lent = HashMap::new();
    let (mine, also_mine, theirs) = (router(), router(), router());
    for (r, by) in [(mine, "h1"), (also_mine, "h1"), (theirs, "h3")] {
        assert_eq!(authorize(&mut lent, caller(by, 1), &create(r)), Ok(()));
    }
    let producer = ipc::messages::ProducerId(uuid::Uuid::new_v4());
    let pipe = |target| -> Request {
        call::PipeToRouter {
            router: mine,
            producer,
            target,
        }
        .into()
    };
    assert_eq!(
        authorize(&mut lent, caller("h1", 1), &pipe(also_mine)),
        Ok(())
    );
    assert!(authorize(&mut lent, caller("h1", 1), &pipe(theirs)).is_err());
}
