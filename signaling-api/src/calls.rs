//! Each request type names its method and its answer type (as mediasoup's requests do), so
//! a client cannot send a `consume` and read the answer as a `produce`: `client.call(&args)`
//! returns `args`' answer, typed.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{
    ConnectTransportArgs, ConsumeArgs, ConsumeDataArgs, Consumed, ConsumerArgs,
    CreateTransportArgs, DataConsumed, DataProduced, Done, IceRestarted, JoinArgs, Joined,
    LastNArgs, Method, PreferredLayersArgs, ProduceArgs, ProduceDataArgs, Produced, ProducerArgs,
    ResumeArgs, Resumed, RouterCapabilities, StartRecordingArgs, TransportArgs, TransportCreated,
};

/// A request of the protocol: its method, and what a success answers.
pub trait Call: Serialize {
    /// The method it is sent as.
    const METHOD: Method;
    /// The `data` of its success answer.
    type Answer: DeserializeOwned;
}

macro_rules! calls {
    ($($(#[$doc:meta])* $args:ty => $method:ident -> $answer:ty;)*) => {
        $(
            $(#[$doc])*
            impl Call for $args {
                const METHOD: Method = Method::$method;
                type Answer = $answer;
            }
        )*
        /// Every method and the request type that sends it (a test holds it to
        /// [`Method::ALL`]).
        #[cfg(test)]
        pub(crate) const CALLS: &[Method] = &[$(<$args as Call>::METHOD),*];
    };
}

/// A request without arguments: `leave`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Leave {}

/// A request without arguments: `stopRecording`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct StopRecording {}

/// A request without arguments: `getRouterRtpCapabilities`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct GetRouterRtpCapabilities {}

macro_rules! named {
    ($($(#[$doc:meta])* $name:ident($args:ty);)*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Debug, Serialize, Deserialize)]
            #[serde(transparent)]
            pub struct $name(pub $args);
        )*
    };
}

named! {
    /// `restartIce` of a transport.
    RestartIce(TransportArgs);
    /// `closeTransport`.
    CloseTransport(TransportArgs);
    /// `pauseProducer`.
    PauseProducer(ProducerArgs);
    /// `resumeProducer`.
    ResumeProducer(ProducerArgs);
    /// `closeProducer`.
    CloseProducer(ProducerArgs);
    /// `pauseConsumer`.
    PauseConsumer(ConsumerArgs);
    /// `resumeConsumer`.
    ResumeConsumer(ConsumerArgs);
    /// `closeConsumer`.
    CloseConsumer(ConsumerArgs);
}

calls! {
    JoinArgs => Join -> Joined;
    ResumeArgs => Resume -> Resumed;
    Leave => Leave -> Done;
    GetRouterRtpCapabilities => GetRouterRtpCapabilities -> RouterCapabilities;
    CreateTransportArgs => CreateWebRtcTransport -> TransportCreated;
    ConnectTransportArgs => ConnectWebRtcTransport -> Done;
    RestartIce => RestartIce -> IceRestarted;
    CloseTransport => CloseTransport -> Done;
    ProduceArgs => Produce -> Produced;
    ConsumeArgs => Consume -> Consumed;
    PauseProducer => PauseProducer -> Done;
    ResumeProducer => ResumeProducer -> Done;
    CloseProducer => CloseProducer -> Done;
    PauseConsumer => PauseConsumer -> Done;
    ResumeConsumer => ResumeConsumer -> Done;
    CloseConsumer => CloseConsumer -> Done;
    PreferredLayersArgs => SetConsumerPreferredLayers -> Done;
    ProduceDataArgs => ProduceData -> DataProduced;
    ConsumeDataArgs => ConsumeData -> DataConsumed;
    LastNArgs => SetLastN -> Done;
    StartRecordingArgs => StartRecording -> Done;
    StopRecording => StopRecording -> Done;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_has_one_request_type() {
        let mut calls = CALLS.to_vec();
        calls.sort_by_key(|m| m.name());
        calls.dedup();
        assert_eq!(calls.len(), CALLS.len(), "a method named twice");
        let mut all = Method::ALL.to_vec();
        all.sort_by_key(|m| m.name());
        assert_eq!(calls, all);
    }

    #[test]
    fn a_request_serializes_as_the_server_reads_it() {
        let join = JoinArgs {
            room: "r".into(),
            display_name: "n".into(),
            token: None,
            watch_only: false,
            last_n: None,
        };
        let data = serde_json::to_value(&join).unwrap();
        assert_eq!(data, serde_json::json!({"room": "r", "displayName": "n"}));
        let request = crate::Request::from_data(JoinArgs::METHOD, data).unwrap();
        assert!(matches!(request, crate::Request::Join(args) if args.room == "r"));
        let resume = ResumeConsumer(ConsumerArgs {
            consumer_id: "c".into(),
        });
        let data = serde_json::to_value(&resume).unwrap();
        assert_eq!(data, serde_json::json!({"consumerId": "c"}));
        let request = crate::Request::from_data(ResumeConsumer::METHOD, data).unwrap();
        assert!(matches!(
            request,
            crate::Request::Consumer {
                action: crate::ConsumerAction::Resume,
                ..
            }
        ));
        let transport = CreateTransportArgs {
            direction: crate::Direction::Send,
            data: false,
        };
        let data = serde_json::to_value(&transport).unwrap();
        assert_eq!(data, serde_json::json!({"direction": "send"}));
    }
}
