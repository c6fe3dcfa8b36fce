//! Relay messages: what a recognised cell carries.
//!
//! ```text
//! command u8 ‖ stream id u32 LE ‖ length u16 LE ‖ data (length bytes) ‖ zeros
//! ```
//!
//! The stream id and command sit inside the innermost layer, so only the
//! hop a cell is for sees them.

use crate::cell::{BACKWARD_ROOM, FORWARD_ROOM};

/// Bytes before a message's data.
pub const HEADER: usize = 7;
/// The most data one forward cell carries.
pub const FORWARD_DATA: usize = FORWARD_ROOM - HEADER;
/// The most data one backward cell carries.
pub const BACKWARD_DATA: usize = BACKWARD_ROOM - HEADER;

/// A `BEGIN` that asks the exit for a chunk: this byte, then its name (32).
pub const BEGIN_GET_CHUNK: u8 = 1;
/// A `BEGIN` that asks the exit for a record: this byte, its address (32),
/// then optionally the holders to ask, as for a chunk. The answer is the
/// encoded record the exit resolved from the copies it got.
pub const BEGIN_GET_RECORD: u8 = 2;
/// A `BEGIN` that asks the exit to write to a record: this byte, the
/// holders to send it to (a count, possibly 0: the close group as the exit
/// sees it, then that many length-prefixed peer ids), then the encoded
/// write to the end. The answer is what the holders said (receipts and
/// refusals), for the client to check.
pub const BEGIN_PUT_RECORD: u8 = 3;
/// A `BEGIN` that asks the exit to put a chunk: this byte, the holders to
/// send it to (as for a record write), then its size (u32 LE, at most a
/// chunk's). Its bytes follow in `DATA` cells on the same stream. The
/// answer is the members' receipts, for the client to check.
pub const BEGIN_PUT_CHUNK: u8 = 4;
/// The most holders a request may name for the exit to ask.
pub const MAX_HOLDERS: usize = 5;
/// `END` reason: the answer is complete.
pub const END_DONE: u8 = 0;
/// `END` reason: no holder had it.
pub const END_NOT_FOUND: u8 = 1;
/// `END` reason: a request this exit does not serve.
pub const END_UNSUPPORTED: u8 = 2;
/// `END` reason: too many requests on this circuit at once.
pub const END_BUSY: u8 = 3;
/// `END` reason: the network charges for storage, and an anonymous put
/// cannot carry a payment yet (`docs/DESIGN-currency.md`).
pub const END_UNPAID: u8 = 4;

/// What a relay message asks or says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Command {
    /// Extend the circuit: a peer id, then a `CREATE`.
    Extend = 1,
    /// The next hop's `CREATED`.
    Extended = 2,
    /// Start a request on a stream.
    Begin = 3,
    /// Bytes of a stream's request or answer.
    Data = 4,
    /// A stream is over; the first data byte is a reason.
    End = 5,
    /// Flow control: the MAC tag of the cell acknowledged.
    Sendme = 6,
    /// Ask the exit for the peers closest to a random key.
    Sample = 7,
    /// Nothing; dropped.
    Padding = 8,
}

impl Command {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Extend,
            2 => Self::Extended,
            3 => Self::Begin,
            4 => Self::Data,
            5 => Self::End,
            6 => Self::Sendme,
            7 => Self::Sample,
            8 => Self::Padding,
            _ => return None,
        })
    }
}

/// Why a message was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    /// A command this version does not know.
    #[error("unknown relay command {0}")]
    Command(u8),
    /// A length past the room the cell has.
    #[error("relay message length {0} is past the cell's room")]
    Length(usize),
}

/// A relay message, borrowing its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// What it is.
    pub command: Command,
    /// The stream it belongs to (0: the circuit itself).
    pub stream: u32,
    /// Its data.
    pub data: &'a [u8],
}

impl<'a> Message<'a> {
    /// The encoding, checked against `room` ([`FORWARD_ROOM`] or
    /// [`BACKWARD_ROOM`]).
    pub fn to_bytes(&self, room: usize) -> Result<Vec<u8>, MessageError> {
        if HEADER + self.data.len() > room || self.data.len() > u16::MAX as usize {
            return Err(MessageError::Length(self.data.len()));
        }
        let mut out = Vec::with_capacity(HEADER + self.data.len());
        out.push(self.command as u8);
        out.extend_from_slice(&self.stream.to_le_bytes());
        out.extend_from_slice(&(self.data.len() as u16).to_le_bytes());
        out.extend_from_slice(self.data);
        Ok(out)
    }

    /// Reads a message from a recognised cell's message area, at most
    /// `room` bytes of which are message.
    pub fn decode(area: &'a [u8], room: usize) -> Result<Self, MessageError> {
        let room = room.min(area.len());
        if room < HEADER {
            return Err(MessageError::Length(0));
        }
        let command = Command::from_u8(area[0]).ok_or(MessageError::Command(area[0]))?;
        let stream = u32::from_le_bytes([area[1], area[2], area[3], area[4]]);
        let len = u16::from_le_bytes([area[5], area[6]]) as usize;
        if HEADER + len > room {
            return Err(MessageError::Length(len));
        }
        Ok(Self {
            command,
            stream,
            data: &area[HEADER..HEADER + len],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_overlong_ones_are_refused() {
        let m = Message {
            command: Command::Data,
            stream: 9,
            data: &[5; 100],
        };
        let bytes = m.to_bytes(FORWARD_ROOM).unwrap();
        let mut area = vec![0u8; FORWARD_ROOM + 32];
        area[..bytes.len()].copy_from_slice(&bytes);
        assert_eq!(Message::decode(&area, FORWARD_ROOM), Ok(m));
        let big = vec![0u8; FORWARD_DATA + 1];
        let m = Message {
            command: Command::Data,
            stream: 1,
            data: &big,
        };
        assert!(m.to_bytes(FORWARD_ROOM).is_err());
        assert!(m.to_bytes(BACKWARD_ROOM).is_ok());
        // A length reaching into the filler is refused.
        area[5..7].copy_from_slice(&((FORWARD_DATA + 1) as u16).to_le_bytes());
        assert_eq!(
            Message::decode(&area, FORWARD_ROOM),
            Err(MessageError::Length(FORWARD_DATA + 1))
        );
        area[0] = 99;
        assert_eq!(
            Message::decode(&area, FORWARD_ROOM),
            Err(MessageError::Command(99))
        );
        assert!(Message::decode(&area[..3], FORWARD_ROOM).is_err());
    }
}
