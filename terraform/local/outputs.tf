# The provisioning contract (terraform/modules/contract): the hosts this configuration made and
# how Ansible reaches them; `lakehouse provision` turns it into an inventory.
module "contract" {
  source = "../modules/contract"
  site   = var.site
  state  = var.state
  hosts = merge(
    {
      for host, groups in local.metal_hosts : host => {
        groups = groups
        vars = {
          ansible_connection         = "docker"
          ansible_python_interpreter = "/usr/bin/python3"
          lakehouse_delivery         = "systemd"
        }
      }
    },
    var.cluster == null ? {} : {
      "${var.cluster.name}.${var.site}.${var.domain}" = {
        groups = var.cluster.groups
        vars = {
          ansible_connection       = "local"
          lakehouse_delivery       = "helm"
          lakehouse_k8s_kubeconfig = abspath(var.cluster.kubeconfig)
          lakehouse_k8s_context    = local.context_name
          lakehouse_k8s_namespace  = var.cluster.namespace
        }
      }
    },
  )
  kubernetes = var.cluster == null ? null : {
    api_server      = local.cluster_entry.server
    ca_certificate  = try(base64decode(local.cluster_entry["certificate-authority-data"]), file(local.cluster_entry["certificate-authority"]))
    namespace       = var.cluster.namespace
    service_account = "lakehouse-deployer"
  }
}

output "lakehouse" {
  description = "The provisioning contract: site, hosts with their groups and connection, Kubernetes API, object storage, state."
  value       = module.contract.lakehouse
}
