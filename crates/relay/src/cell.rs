//! Cells: every cell on a relay link is exactly [`CELL`] bytes.
//!
//! ```text
//! link cell: circuit id u32 LE (4) ‖ link command u8 (1) ‖ zero (3) ‖ body (BODY)
//! ```
//!
//! A `RELAY` body is layered, one layer per hop, with `n` the hop's cell
//! counter in that direction (cells it has taken in, or sent and passed on):
//!
//! ```text
//! forward, as hop i receives it:  T (16) ‖ C (BODY − 16)
//!   T = BLAKE3-keyed(fwd_mac_i, n ‖ link command ‖ C)[..16]   checked first, on every byte
//!   P = C ⊕ ChaCha20(fwd_enc_i, nonce n)
//!   P[..16] = ChaCha20(fwd_rec_i, nonce n)[..16]  →  for this hop: message = P[16..]
//!   otherwise forward P ‖ ChaCha20(fwd_fill_i, nonce n)[..16]   (again BODY bytes)
//!
//! backward, as the answering hop j sends it:  R (16) ‖ T (16) ‖ C (BODY − 32)
//!   R = ChaCha20(bwd_rec_j, nonce n)[..16], C = message ⊕ ChaCha20(bwd_enc_j, nonce n),
//!   T = BLAKE3-keyed(bwd_mac_j, n ‖ RELAY ‖ C)[..16];
//!   every earlier hop XORs the whole body with ChaCha20(bwd_enc, nonce n).
//! ```
//!
//! The client builds a forward cell for hop t from the inside out and,
//! knowing every hop's filler, chooses the last 16·t bytes of the message
//! area so that each hop's filler lands where the next hop's MAC expects it
//! (as Sphinx does). So every hop checks a MAC over every byte it gets: a
//! hop that alters, replays, reorders or drops a cell makes the next hop's
//! check fail, and the circuit is destroyed. Tagging becomes denial. The
//! link command (`RELAY` or `RELAY_EARLY`) is in every hop's MAC too, so it
//! cannot carry a mark either; backward cells are always `RELAY` (a relay
//! destroys a circuit on a backward `RELAY_EARLY`), and `DESTROY` is
//! passed on without its reason.

use crate::keys::{HopKeys, TAG, mac, stream_tag, tags_equal, xor_stream};

/// Bytes of every cell on a relay link.
pub const CELL: usize = 16_384;
/// Bytes before a cell's body: circuit id, link command, zeros.
pub const LINK_HEADER: usize = 8;
/// Bytes of a cell's body.
pub const BODY: usize = CELL - LINK_HEADER;
/// The most hops a client builds a circuit of (and reserves filler for).
pub const MAX_HOPS: usize = 3;
/// Room for a forward relay message (what one hop can be sent per cell).
pub const FORWARD_ROOM: usize = BODY - 2 * TAG - TAG * (MAX_HOPS - 1);
/// Room for a backward relay message.
pub const BACKWARD_ROOM: usize = BODY - 2 * TAG;
/// The most `RELAY_EARLY` cells a hop takes on one circuit (Tor's rule):
/// `EXTEND` comes only in those, so no circuit grows past this many hops.
pub const MAX_EARLY: u32 = 8;

/// Why a cell was refused. Any of these destroys the circuit.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CellError {
    /// Not [`CELL`] bytes, reserved bytes not zero, or an unknown command.
    #[error("malformed link cell")]
    Malformed,
    /// The MAC did not verify: the cell was altered, replayed, reordered,
    /// or one before it was dropped.
    #[error("relay cell failed its MAC (altered, replayed, reordered or dropped)")]
    BadMac,
    /// A backward cell that no hop of the circuit sent.
    #[error("backward relay cell recognised by no hop")]
    Unrecognised,
    /// The client asked for a hop the circuit does not have.
    #[error("no hop {0} on this circuit")]
    NoSuchHop(usize),
    /// A message larger than a cell has room for.
    #[error("relay message of {0} bytes does not fit in a cell")]
    TooLong(usize),
    /// More than [`MAX_EARLY`] `RELAY_EARLY` cells on one circuit.
    #[error("more than {MAX_EARLY} RELAY_EARLY cells on one circuit")]
    TooManyEarly,
    /// No randomness for the client's padding key.
    #[error("no randomness for a circuit: {0}")]
    Random(String),
    /// A circuit's counter ran out (it never does within a circuit's
    /// lifetime; refused rather than wrapped).
    #[error("circuit cell counter exhausted")]
    Exhausted,
}

/// What a link cell is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum LinkCommand {
    /// Open a circuit on this link: the body starts with a `CREATE`.
    Create = 1,
    /// The answer to `Create`: the body starts with a `CREATED`.
    Created = 2,
    /// A layered relay cell.
    Relay = 3,
    /// A relay cell that may carry `EXTEND`; forward only, at most
    /// [`MAX_EARLY`] per circuit.
    RelayEarly = 4,
    /// Close the circuit; the body's first byte is a reason, which a relay
    /// zeroes before passing the cell on.
    Destroy = 5,
    /// Link padding, dropped on arrival.
    Padding = 6,
}

impl LinkCommand {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Create,
            2 => Self::Created,
            3 => Self::Relay,
            4 => Self::RelayEarly,
            5 => Self::Destroy,
            6 => Self::Padding,
            _ => return None,
        })
    }
}

/// A cell on a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkCell {
    /// The circuit, named on this link only.
    pub circuit: u32,
    /// What it is for.
    pub command: LinkCommand,
    /// The body.
    pub body: Box<[u8; BODY]>,
}

impl LinkCell {
    /// A cell whose body starts with `prefix` and is zero after it.
    pub fn with_prefix(
        circuit: u32,
        command: LinkCommand,
        prefix: &[u8],
    ) -> Result<Self, CellError> {
        if prefix.len() > BODY {
            return Err(CellError::TooLong(prefix.len()));
        }
        let mut body = Box::new([0u8; BODY]);
        body[..prefix.len()].copy_from_slice(prefix);
        Ok(Self {
            circuit,
            command,
            body,
        })
    }

    /// Writes the cell's [`CELL`] bytes.
    pub fn encode(&self, out: &mut [u8; CELL]) {
        out[..4].copy_from_slice(&self.circuit.to_le_bytes());
        out[4] = self.command as u8;
        out[5..LINK_HEADER].fill(0);
        out[LINK_HEADER..].copy_from_slice(self.body.as_slice());
    }

    /// Reads a cell.
    pub fn decode(bytes: &[u8]) -> Result<Self, CellError> {
        if bytes.len() != CELL || bytes[5..LINK_HEADER] != [0; 3] {
            return Err(CellError::Malformed);
        }
        let command = LinkCommand::from_u8(bytes[4]).ok_or(CellError::Malformed)?;
        let mut body = Box::new([0u8; BODY]);
        body.copy_from_slice(&bytes[LINK_HEADER..]);
        let mut circuit = [0u8; 4];
        circuit.copy_from_slice(&bytes[..4]);
        Ok(Self {
            circuit: u32::from_le_bytes(circuit),
            command,
            body,
        })
    }
}

/// What a hop does with a forward cell it has checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarded {
    /// The cell is for this hop: its message is [`forward_message`] of the
    /// body.
    Mine,
    /// The body now holds the cell for the next hop.
    Pass,
}

/// The message area of a forward body a hop recognised (the message
/// decoder reads its header and length; the last bytes are filler).
pub fn forward_message(body: &[u8; BODY]) -> &[u8] {
    &body[2 * TAG..]
}

/// One hop's circuit state: its keys and a counter per direction. Relays
/// keep one per circuit; the client keeps one per hop, in step.
#[derive(Debug)]
pub struct HopState {
    keys: HopKeys,
    fwd: u64,
    bwd: u64,
    early: u32,
}

/// The link command byte a forward cell's MACs cover.
fn command_byte(early: bool) -> u8 {
    if early {
        LinkCommand::RelayEarly as u8
    } else {
        LinkCommand::Relay as u8
    }
}

fn next(n: &mut u64) -> Result<u64, CellError> {
    let now = *n;
    *n = n.checked_add(1).ok_or(CellError::Exhausted)?;
    Ok(now)
}

impl HopState {
    /// A hop's state right after its handshake.
    pub fn new(keys: HopKeys) -> Self {
        Self {
            keys,
            fwd: 0,
            bwd: 0,
            early: 0,
        }
    }

    /// Checks and unwraps one layer of a forward cell, in place. `early`:
    /// it came as `RELAY_EARLY` (and is passed on as such).
    pub fn forward(&mut self, body: &mut [u8; BODY], early: bool) -> Result<Forwarded, CellError> {
        let n = self.fwd;
        let (t, c) = body.split_at_mut(TAG);
        if !tags_equal(t, &mac(&self.keys.fwd_mac, n, command_byte(early), c)) {
            return Err(CellError::BadMac);
        }
        if early && self.early >= MAX_EARLY {
            return Err(CellError::TooManyEarly);
        }
        next(&mut self.fwd)?;
        if early {
            self.early += 1;
        }
        xor_stream(&self.keys.fwd_enc, n, c);
        if tags_equal(&c[..TAG], &stream_tag(&self.keys.fwd_rec, n)) {
            return Ok(Forwarded::Mine);
        }
        body.copy_within(TAG.., 0);
        body[BODY - TAG..].copy_from_slice(&stream_tag(&self.keys.fwd_fill, n));
        Ok(Forwarded::Pass)
    }

    /// A backward cell from this hop carrying `message`.
    pub fn originate(&mut self, message: &[u8]) -> Result<Box<[u8; BODY]>, CellError> {
        if message.len() > BACKWARD_ROOM {
            return Err(CellError::TooLong(message.len()));
        }
        let n = next(&mut self.bwd)?;
        let mut body = Box::new([0u8; BODY]);
        body[2 * TAG..2 * TAG + message.len()].copy_from_slice(message);
        xor_stream(&self.keys.bwd_enc, n, &mut body[2 * TAG..]);
        let t = mac(
            &self.keys.bwd_mac,
            n,
            LinkCommand::Relay as u8,
            &body[2 * TAG..],
        );
        body[TAG..2 * TAG].copy_from_slice(&t);
        body[..TAG].copy_from_slice(&stream_tag(&self.keys.bwd_rec, n));
        Ok(body)
    }

    /// Adds this hop's layer to a backward cell passing through, in place.
    pub fn backward(&mut self, body: &mut [u8; BODY]) -> Result<(), CellError> {
        let n = next(&mut self.bwd)?;
        xor_stream(&self.keys.bwd_enc, n, body.as_mut_slice());
        Ok(())
    }
}

/// The client's side of a circuit: one [`HopState`] per hop, guard first.
pub struct ClientCircuit {
    hops: Vec<HopState>,
    /// The client's own key for the random bytes that pad the reserved
    /// tail of a message area, so the hop a cell is for cannot count the
    /// filler blocks in it (which would tell it its position).
    pad_key: [u8; 32],
    sealed: u64,
}

impl std::fmt::Debug for ClientCircuit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCircuit")
            .field("hops", &self.hops.len())
            .finish()
    }
}

impl Drop for ClientCircuit {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.pad_key);
    }
}

impl ClientCircuit {
    /// A circuit with no hops yet.
    pub fn new() -> Result<Self, CellError> {
        let mut pad_key = [0u8; 32];
        getrandom::fill(&mut pad_key).map_err(|e| CellError::Random(e.to_string()))?;
        Ok(Self {
            hops: Vec::new(),
            pad_key,
            sealed: 0,
        })
    }

    /// Adds the next hop, after its handshake. At most [`MAX_HOPS`].
    pub fn push(&mut self, keys: HopKeys) -> Result<(), CellError> {
        if self.hops.len() >= MAX_HOPS {
            return Err(CellError::NoSuchHop(self.hops.len()));
        }
        self.hops.push(HopState::new(keys));
        Ok(())
    }

    /// Hops so far.
    pub fn len(&self) -> usize {
        self.hops.len()
    }

    /// True before the first hop.
    pub fn is_empty(&self) -> bool {
        self.hops.is_empty()
    }

    /// A forward cell carrying `message` to hop `target` (0 is the guard),
    /// to be sent to the guard as `RELAY_EARLY` if `early`, else `RELAY`.
    pub fn seal(
        &mut self,
        target: usize,
        message: &[u8],
        early: bool,
    ) -> Result<Box<[u8; BODY]>, CellError> {
        if target >= self.hops.len() {
            return Err(CellError::NoSuchHop(target));
        }
        if message.len() > FORWARD_ROOM {
            return Err(CellError::TooLong(message.len()));
        }
        // Every counter this cell moves must have room, before any moves.
        if self.hops[..=target].iter().any(|h| h.fwd == u64::MAX) || self.sealed == u64::MAX {
            return Err(CellError::Exhausted);
        }
        let hops = &self.hops[..=target];
        // Each hop's keystream over its C, and the filler it will append.
        let streams: Vec<Box<[u8; BODY - TAG]>> = hops
            .iter()
            .map(|h| {
                let mut ks = Box::new([0u8; BODY - TAG]);
                xor_stream(&h.keys.fwd_enc, h.fwd, ks.as_mut_slice());
                ks
            })
            .collect();
        // What the last 16·t bytes of the body reaching hop t will be: the
        // fillers of hops 0..t, each passed through the later hops' layers.
        let mut tail: Vec<u8> = Vec::with_capacity(TAG * target);
        for (h, ks) in hops[..target].iter().zip(&streams) {
            let from = ks.len() - tail.len();
            for (b, k) in tail.iter_mut().zip(&ks[from..]) {
                *b ^= k;
            }
            tail.extend_from_slice(&stream_tag(&h.keys.fwd_fill, h.fwd));
        }
        // Hop t's plaintext: its marker, the message, zeros, random bytes
        // where the reserved tail has no filler, and the bytes that encrypt
        // to `tail`; so every message area ends in 16·(MAX_HOPS − 1) bytes
        // that look random to the hop, wherever it is.
        let last = &hops[target];
        let mut body = Box::new([0u8; BODY]);
        {
            let p = &mut body[TAG..];
            p[..TAG].copy_from_slice(&stream_tag(&last.keys.fwd_rec, last.fwd));
            p[TAG..TAG + message.len()].copy_from_slice(message);
            let reserved = p.len() - TAG * (MAX_HOPS - 1);
            let from = p.len() - tail.len();
            let pad = next(&mut self.sealed)?;
            xor_stream(&self.pad_key, pad, &mut p[reserved..from]);
            for ((b, t), k) in p[from..]
                .iter_mut()
                .zip(&tail)
                .zip(&streams[target][from..])
            {
                *b = t ^ k;
            }
        }
        // Wrap: encrypt and MAC for hop t, then each earlier hop, inwards out.
        for j in (0..=target).rev() {
            if j < target {
                // The body for hop j+1 is hop j's plaintext and its filler.
                body.copy_within(..BODY - TAG, TAG);
            }
            let h = &hops[j];
            let c = &mut body[TAG..];
            for (b, k) in c.iter_mut().zip(streams[j].iter()) {
                *b ^= k;
            }
            let t = mac(&h.keys.fwd_mac, h.fwd, command_byte(early), c);
            body[..TAG].copy_from_slice(&t);
        }
        for h in &mut self.hops[..=target] {
            next(&mut h.fwd)?;
        }
        Ok(body)
    }

    /// Removes the layers of a backward cell from the guard, in place.
    /// Returns the hop that sent it and its message area.
    pub fn open<'a>(&mut self, body: &'a mut [u8; BODY]) -> Result<(usize, &'a [u8]), CellError> {
        for j in 0..self.hops.len() {
            let h = &self.hops[j];
            let n = h.bwd;
            if tags_equal(&body[..TAG], &stream_tag(&h.keys.bwd_rec, n)) {
                let t = mac(
                    &h.keys.bwd_mac,
                    n,
                    LinkCommand::Relay as u8,
                    &body[2 * TAG..],
                );
                if !tags_equal(&body[TAG..2 * TAG], &t) {
                    return Err(CellError::BadMac);
                }
                xor_stream(&h.keys.bwd_enc, n, &mut body[2 * TAG..]);
                for h in &mut self.hops[..=j] {
                    next(&mut h.bwd)?;
                }
                return Ok((j, &body[2 * TAG..]));
            }
            xor_stream(&h.keys.bwd_enc, n, body.as_mut_slice());
        }
        Err(CellError::Unrecognised)
    }
}

#[cfg(test)]
mod tests;
