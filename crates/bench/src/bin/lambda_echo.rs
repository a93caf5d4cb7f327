//! The start-up baseline for `lambda-start`: the smallest function on the
//! same runtime crate (`lambda_runtime`, tokio), with no AWS SDK and no
//! settings. It answers each event with the event.

use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move { Ok::<_, Error>(event.payload) },
    ))
    .await
}
