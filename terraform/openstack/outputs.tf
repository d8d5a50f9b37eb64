# The provisioning contract (terraform/README.md): the shape every module outputs.
output "lakehouse" {
  description = "The provisioning contract: site, hosts with their groups and connection, Kubernetes API, object storage, state."
  value = {
    contract = "lakehouse.provisioning/v1"
    site     = var.site
    hosts = {
      for host, spec in local.hosts : host => {
        groups = spec.groups
        vars = {
          ansible_user       = var.ssh_user
          ansible_become     = "true"
          lakehouse_delivery = "systemd"
        }
      }
      # Only once the name resolves does the inventory point at it.
      if contains(keys(openstack_dns_recordset_v2.host), host)
    }
    kubernetes = null
    object_storage = {
      endpoint = try("https://${sort([for host, spec in local.hosts : host if contains(spec.groups, "object_storage")])[0]}:9000", null)
    }
    state = var.state
  }
}
