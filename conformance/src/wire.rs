//! The suite's stdin/stdout framing: a 4-byte big-endian length, then a binary protobuf message.

use std::io::{self, Read, Write};

use buffa::Message;

/// Reads one size-delimited message; `None` at a clean end of input.
pub fn read_message<M: Message + Default>(input: &mut impl Read) -> io::Result<Option<M>> {
    let mut prefix = [0u8; 4];
    match input.read_exact(&mut prefix) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut buf = vec![0u8; u32::from_be_bytes(prefix) as usize];
    input.read_exact(&mut buf)?;
    M::decode(&mut &buf[..])
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// Writes one size-delimited message and flushes.
pub fn write_message(output: &mut impl Write, message: &impl Message) -> io::Result<()> {
    let bytes = message.encode_to_vec();
    let len = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too large"))?;
    output.write_all(&len.to_be_bytes())?;
    output.write_all(&bytes)?;
    output.flush()
}
