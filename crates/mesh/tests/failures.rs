//! [`MeshClient`]'s own failures, without MESH: a server that never answers,
//! a port nobody listens on, every status class, configuration it cannot use.
//! Transient errors are worth retrying; refusals are not.

use std::time::Duration;

use cpis_mesh::{Mailbox, MeshClient, MeshConfig, MeshError, Outgoing};

const PASSWORD: &str = "password";
const SHARED_KEY: &str = "TestKey";

fn outgoing<'a>(to: &'a str, local_id: &'a str, body: &'a [u8]) -> Outgoing<'a> {
    Outgoing {
        to,
        workflow_id: "CPIS_MESH_CLIENT_TEST",
        file_name: "test.xml",
        local_id,
        subject: None,
        body,
    }
}

/// A server that accepts connections and never answers.
async fn silent_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{address}")
}

/// A server that answers every request with `status` and an empty body.
async fn answering_server(status: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n")
                    && socket.read(&mut byte).await.is_ok_and(|n| n == 1)
                {
                    head.push(byte[0]);
                }
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    format!("http://{address}")
}

#[tokio::test]
async fn unreachable_or_failing_servers_are_transient() {
    let mut silent = MeshConfig::new(silent_server().await, "X26ABC1", PASSWORD, SHARED_KEY);
    silent.read_timeout = Duration::from_millis(300);
    silent.request_timeout = Duration::from_secs(2);
    let silent = MeshClient::new(silent).unwrap();
    assert!(matches!(
        silent.inbox(None).await,
        Err(MeshError::Transient(_))
    ));
    assert!(matches!(
        silent.handshake().await,
        Err(MeshError::Transient(_))
    ));

    // A port nobody listens on (bound, then closed).
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let closed = MeshClient::new(MeshConfig::new(closed, "X26ABC1", PASSWORD, SHARED_KEY)).unwrap();
    assert!(matches!(
        closed.inbox(None).await,
        Err(MeshError::Transient(_))
    ));

    for (status, transient) in [
        (500, true),
        (503, true),
        (429, true),
        (403, false),
        (417, false),
    ] {
        let mailbox = MeshClient::new(MeshConfig::new(
            answering_server(status).await,
            "X26ABC1",
            PASSWORD,
            SHARED_KEY,
        ))
        .unwrap();
        let local = "local-1";
        for result in [
            mailbox.inbox(None).await.map(|_| ()),
            mailbox.download("ABC").await.map(|_| ()),
            mailbox.acknowledge("ABC").await,
            mailbox
                .send(&outgoing("X26ABC2", local, b"<File/>"))
                .await
                .map(|_| ()),
            mailbox.track("local").await.map(|_| ()),
        ] {
            match result {
                Err(MeshError::Transient(_)) if transient => {}
                Err(MeshError::Refused(_)) if !transient => {}
                other => panic!("HTTP {status}: {other:?}"),
            }
        }
    }
}

#[test]
fn bad_configuration_is_refused() {
    for (url, mailbox) in [
        ("ftp://x", "X26ABC1"),
        ("not a url", "X26ABC1"),
        ("http://127.0.0.1:1", ""),
        ("http://127.0.0.1:1", "X26/../A"),
    ] {
        assert!(matches!(
            MeshClient::new(MeshConfig::new(url, mailbox, PASSWORD, SHARED_KEY)),
            Err(MeshError::Refused(_))
        ));
    }
    let mut bad_pem = MeshConfig::new("https://127.0.0.1:1", "X26ABC1", PASSWORD, SHARED_KEY);
    bad_pem.client_identity = Some(cpis_mesh::ClientIdentity {
        certificate_pem: b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
            .to_vec(),
        private_key_pem: "-----BEGIN PRIVATE KEY-----\ns3cr3t\n-----END PRIVATE KEY-----\n".into(),
    });
    match MeshClient::new(bad_pem) {
        Err(MeshError::Refused(why)) => assert!(!why.contains("s3cr3t"), "{why}"),
        other => panic!("{other:?}"),
    }
}
