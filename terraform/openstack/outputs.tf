# The provisioning contract (terraform/modules/contract): the hosts this configuration made and
# how Ansible reaches them; `lakehouse provision` turns it into an inventory.
module "contract" {
  source = "../modules/contract"
  site   = var.site
  state  = var.state
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
}

output "lakehouse" {
  description = "The provisioning contract: site, hosts with their groups and connection, Kubernetes API, object storage, state."
  value       = module.contract.lakehouse
}
