//! One test per validation error case of issue 2.

use super::errors;

#[test]
fn explore() {
    let e = errors("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: x\nspec:\n  hosts: [a]\n  http:\n  - route:\n    - destination:\n        host: a\n      weightt: 5\n");
    println!("{e:#?}");
    panic!();
}
