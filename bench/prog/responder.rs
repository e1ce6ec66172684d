//! `responder`: a fast UDP+TCP DNS responder for end-to-end runs, answering every A query with
//! one address (the answers are written by the tests' DNS codec).

use crate::dns;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};

pub fn serve_udp(sock: UdpSocket, addr: Ipv4Addr) {
    let mut buf = [0u8; 4096];
    let mut out = Vec::with_capacity(512);
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if dns::write_answer(&buf[..n], &mut out, || addr).is_some() {
            let _ = sock.send_to(&out, peer);
        }
    }
}

pub fn serve_tcp(mut conn: TcpStream, addr: Ipv4Addr) {
    let _ = conn.set_nodelay(true);
    let mut out = Vec::with_capacity(514);
    loop {
        let mut len = [0u8; 2];
        if conn.read_exact(&mut len).is_err() {
            return;
        }
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        if conn.read_exact(&mut msg).is_err() {
            return;
        }
        out.clear();
        out.extend_from_slice(&[0, 0]);
        let mut body = Vec::new();
        if dns::write_answer(&msg, &mut body, || addr).is_none() {
            continue;
        }
        out[..2].copy_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(&body);
        if conn.write_all(&out).is_err() {
            return;
        }
    }
}

pub fn responder(args: &[String]) -> Result<(), String> {
    let usage = "responder ADDR[:PORT] ANSWER [THREADS]";
    let (listen, ans) = match args {
        [l, a, ..] => (l, a),
        _ => return Err(usage.into()),
    };
    let listen: SocketAddr = if listen.contains(':') {
        listen.parse()
    } else {
        format!("{listen}:53").parse()
    }
    .map_err(|e| format!("{listen}: {e}"))?;
    let addr: Ipv4Addr = ans.parse().map_err(|e| format!("{ans}: {e}"))?;
    let threads: usize = args
        .get(2)
        .map_or(Ok(1), |t| t.parse())
        .map_err(|e| format!("{e}"))?;
    let udp = UdpSocket::bind(listen).map_err(|e| format!("udp {listen}: {e}"))?;
    let tcp = TcpListener::bind(listen).map_err(|e| format!("tcp {listen}: {e}"))?;
    std::thread::spawn(move || {
        for conn in tcp.incoming().flatten() {
            std::thread::spawn(move || serve_tcp(conn, addr));
        }
    });
    for _ in 1..threads {
        let s = udp.try_clone().map_err(|e| e.to_string())?;
        std::thread::spawn(move || serve_udp(s, addr));
    }
    eprintln!("responder: {listen} udp+tcp, A -> {addr}, {threads} UDP thread(s)");
    serve_udp(udp, addr);
    Ok(())
}
