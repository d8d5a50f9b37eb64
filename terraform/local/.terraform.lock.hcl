# This file is maintained automatically by "tofu init".
# Manual edits may be lost in future updates.

provider "registry.opentofu.org/gavinbunney/kubectl" {
  version     = "1.19.0"
  constraints = "1.19.0"
  hashes = [
    "h1:0ccfZn1Dcn0BSbWzvuGykQnEC9X4/5fLhADo6v2CQ/4=",
  ]
}
