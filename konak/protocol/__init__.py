"""The wire contract between devices and the hub: topics, messages, codec.

Daemon and hub both import this package; nothing else defines a message.
"""

from konak.protocol.codec import decode, decode_as, encode
from konak.protocol.errors import ProtocolError
from konak.protocol.messages import (
    MAX_PAYLOAD_BYTES,
    MESSAGE_TYPES,
    SCHEMA_VERSION,
    Cmd,
    Config,
    Intent,
    Message,
    ModelsUpdate,
    Reply,
    ReplyOutcome,
    Status,
    Telemetry,
    Wake,
    WakeWordSetting,
    message_type,
)
from konak.protocol.topics import (
    SPECS,
    Kind,
    Topic,
    TopicSpec,
    build_topic,
    device_acl,
    parse_topic,
    subscription,
)

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MESSAGE_TYPES",
    "SCHEMA_VERSION",
    "SPECS",
    "Cmd",
    "Config",
    "Intent",
    "Kind",
    "Message",
    "ModelsUpdate",
    "ProtocolError",
    "Reply",
    "ReplyOutcome",
    "Status",
    "Telemetry",
    "Topic",
    "TopicSpec",
    "Wake",
    "WakeWordSetting",
    "build_topic",
    "decode",
    "decode_as",
    "device_acl",
    "encode",
    "message_type",
    "parse_topic",
    "subscription",
]
