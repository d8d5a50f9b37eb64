# The provisioning contract (terraform/README.md): every module outputs this shape, and
# `lakehouse provision` turns it into an inventory.
output "lakehouse" {
  description = "The provisioning contract: site, hosts with their groups and connection, Kubernetes API, object storage, state."
  value = {
    contract = "lakehouse.provisioning/v1"
    site     = var.site
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
    object_storage = {
      # The S3 endpoint the lakehouse will publish: MinIO on the first object storage host.
      endpoint = try("https://${sort([for host, groups in local.metal_hosts : host if contains(groups, "object_storage")])[0]}:9000", null)
    }
    state = var.state
  }
}
