//! A client's network for the firewall tests: a network namespace joined to this one by a
//! veth pair (this side 10.79.N.1, the client's 10.79.N.2), whose outgoing traffic a test
//! filters with iptables-legacy inside the namespace (rules die with it). Removed when
//! dropped, with whatever still runs in it.

use std::net::Ipv4Addr;
use std::process::Command;

/// A client namespace and its link to this one.
pub struct ClientNet {
    /// The namespace's name (`sfu-fwN`).
    pub ns: String,
    veth: String,
    /// This side's address: where the SFU listens for the client.
    pub host_ip: Ipv4Addr,
    /// The client's address.
    pub client_ip: Ipv4Addr,
}

/// Runs `args`, whatever comes of it (cleaning up what may not be there).
fn quietly(args: &[&str]) {
    let _ = Command::new(args[0])
        .args(&args[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

fn run(args: &[&str]) {
    let status = Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(status.success(), "{args:?} failed");
}

impl ClientNet {
    /// Namespace `sfu-fw{index}` on 10.79.`index`.0/24 (each test its own index).
    pub fn create(index: u8) -> ClientNet {
        let ns = format!("sfu-fw{index}");
        let veth = format!("vfw{index}");
        // What a killed run left behind.
        quietly(&["ip", "link", "delete", &veth]);
        quietly(&["ip", "netns", "delete", &ns]);
        let net = ClientNet {
            host_ip: Ipv4Addr::new(10, 79, index, 1),
            client_ip: Ipv4Addr::new(10, 79, index, 2),
            ns,
            veth,
        };
        let peer = format!("{}c", net.veth);
        run(&["ip", "netns", "add", &net.ns]);
        run(&[
            "ip", "link", "add", &net.veth, "type", "veth", "peer", "name", &peer,
        ]);
        run(&["ip", "link", "set", &peer, "netns", &net.ns]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", net.host_ip),
            "dev",
            &net.veth,
        ]);
        run(&["ip", "link", "set", &net.veth, "up"]);
        net.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", net.client_ip),
            "dev",
            &peer,
        ]);
        net.exec(&["ip", "link", "set", &peer, "up"]);
        net.exec(&["ip", "link", "set", "lo", "up"]);
        net
    }

    /// Another address on this side (a second server, e.g. TURN on 443 next to the SFU).
    pub fn add_host_address(&self, ip: Ipv4Addr) {
        run(&["ip", "addr", "add", &format!("{ip}/24"), "dev", &self.veth]);
    }

    /// Runs `args` in the namespace; panics if it fails.
    pub fn exec(&self, args: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", &self.ns];
        full.extend_from_slice(args);
        run(&full);
    }

    /// An iptables-legacy rule in the namespace (`-A OUTPUT …`, `-P OUTPUT DROP`).
    pub fn iptables(&self, rule: &[&str]) {
        let mut full = vec!["iptables-legacy"];
        full.extend_from_slice(rule);
        self.exec(&full);
    }

    /// Drops every UDP packet in and out of the namespace.
    pub fn drop_udp(&self) {
        for chain in ["OUTPUT", "INPUT"] {
            self.iptables(&["-A", chain, "-p", "udp", "-j", "DROP"]);
        }
    }

    /// Lets out of the namespace only (protocol, address, port) of `outgoing` (and answers to
    /// them): a network that reaches nothing else.
    pub fn allow_only(&self, outgoing: &[(&str, Ipv4Addr, u16)]) {
        self.iptables(&["-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT"]);
        let answers = ["-m", "state", "--state", "ESTABLISHED,RELATED"];
        self.iptables(&[&["-A", "OUTPUT"][..], &answers, &["-j", "ACCEPT"]].concat());
        for (protocol, ip, port) in outgoing {
            let (ip, port) = (ip.to_string(), port.to_string());
            let rule = [
                "-A", "OUTPUT", "-p", protocol, "-d", &ip, "--dport", &port, "-j", "ACCEPT",
            ];
            self.iptables(&rule);
        }
        self.iptables(&["-P", "OUTPUT", "DROP"]);
    }

    /// A command to run `program` in the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns, program]);
        command
    }
}

impl Drop for ClientNet {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["link", "delete", &self.veth])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.ns])
            .status();
    }
}
