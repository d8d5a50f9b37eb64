# The provisioning contract (terraform/README.md), built once for every root configuration: they
# say which hosts they made and how to reach them; the shape, its version and the checks are here.

locals {
  service_groups = ["object_storage", "catalog_db", "iceberg_catalog", "query_coordinator", "query_workers", "orchestrator", "observability"]
  # The S3 endpoint the lakehouse will publish: MinIO on the first metal object storage host.
  object_storage_hosts = sort([
    for name, host in var.hosts : name
    if contains(host.groups, "object_storage") && lookup(host.vars, "lakehouse_delivery", "systemd") == "systemd"
  ])
}

output "lakehouse" {
  description = "The provisioning contract: site, hosts with their groups and connection, Kubernetes API, object storage, state."
  value = {
    contract       = "lakehouse.provisioning/v1"
    site           = var.site
    hosts          = var.hosts
    kubernetes     = var.kubernetes
    object_storage = { endpoint = try("https://${local.object_storage_hosts[0]}:${var.object_storage_port}", null) }
    state          = var.state
  }
}
