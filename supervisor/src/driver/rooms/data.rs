//! A joined peer's data channel requests, performed: the core checks and builds each call,
//! the room's node carries it out, and the core records the answer.

use std::sync::Arc;

use super::Rooms;
use signaling_api::{
    ClientError, ConsumeDataArgs, DataConsumed, DataProduced, PeerId, ProduceDataArgs,
};

impl Rooms {
    /// Creates a data producer and tells the other peers; it is piped to the room's other
    /// routers in the background (their peers are told once it is there).
    pub async fn produce_data(
        self: &Arc<Self>,
        peer: PeerId,
        args: ProduceDataArgs,
    ) -> Result<DataProduced, ClientError> {
        let pending = self.state().core.begin_produce_data(peer, args)?;
        let answer = self.call(&pending.target, pending.call.clone()).await?;
        let (produced, work) =
            self.with_core(|core| core.handle_data_produced(peer, pending, answer));
        let rooms = self.clone();
        tokio::spawn(async move { rooms.drive(work).await });
        produced
    }

    /// Creates a data consumer of another peer's data producer.
    pub async fn consume_data(
        &self,
        peer: PeerId,
        args: ConsumeDataArgs,
    ) -> Result<DataConsumed, ClientError> {
        let pending = self.state().core.begin_consume_data(peer, args)?;
        let answer = self.call(&pending.target, pending.call.clone()).await?;
        let (consumed, cleanups) =
            self.with_core(|core| core.handle_data_consumed(peer, pending, answer));
        self.drive(cleanups).await;
        consumed
    }
}
