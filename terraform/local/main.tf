# The local provider: systemd hosts as containers on this machine's Docker engine, and a
# namespace with the deployer's RBAC on an existing cluster. The Docker provider cannot be built
# here, so the hosts are made by the project's own sandbox playbook: one definition of a
# sandbox host, whether `lakehouse up` or this module creates it.

locals {
  repository  = abspath("${path.module}/../..")
  network     = "lakehouse-${var.site}"
  metal_hosts = { for name, groups in var.metal_hosts : "${name}.${var.site}.${var.domain}" => groups }
}

resource "terraform_data" "metal_hosts" {
  count = length(local.metal_hosts) > 0 ? 1 : 0

  # Everything the destroy step needs: a destroy-time provisioner sees only its own resource.
  input = {
    playbook   = var.ansible_playbook
    repository = local.repository
    variables  = jsonencode({ sandbox_hosts = sort(keys(local.metal_hosts)), sandbox_network = local.network })
  }

  provisioner "local-exec" {
    working_dir = self.input.repository
    interpreter = [self.input.playbook, "-i", "inventories/sandbox", "-e", self.input.variables]
    command     = "playbooks/sandbox.yml"
  }

  provisioner "local-exec" {
    when        = destroy
    working_dir = self.input.repository
    interpreter = [self.input.playbook, "-i", "inventories/sandbox", "-e", self.input.variables, "-e", "sandbox_state=absent"]
    command     = "playbooks/sandbox.yml"
  }
}

resource "kubectl_manifest" "namespace" {
  count = var.cluster == null ? 0 : 1
  yaml_body = yamlencode({
    apiVersion = "v1"
    kind       = "Namespace"
    metadata   = { name = var.cluster.namespace, labels = local.labels }
  })
}

# The account the Helm engine may deploy as: every namespaced object of this namespace, nothing
# outside it.
resource "kubectl_manifest" "deployer" {
  for_each   = var.cluster == null ? toset([]) : toset(keys(local.deployer))
  yaml_body  = yamlencode(local.deployer[each.key])
  depends_on = [kubectl_manifest.namespace]
}

locals {
  labels    = { "app.kubernetes.io/part-of" = "lakehouse", "lakehouse.site" = var.site }
  namespace = try(var.cluster.namespace, "")
  deployer = {
    account = {
      apiVersion = "v1"
      kind       = "ServiceAccount"
      metadata   = { name = "lakehouse-deployer", namespace = local.namespace, labels = local.labels }
    }
    role = {
      apiVersion = "rbac.authorization.k8s.io/v1"
      kind       = "Role"
      metadata   = { name = "lakehouse-deployer", namespace = local.namespace, labels = local.labels }
      rules      = [{ apiGroups = ["*"], resources = ["*"], verbs = ["*"] }]
    }
    binding = {
      apiVersion = "rbac.authorization.k8s.io/v1"
      kind       = "RoleBinding"
      metadata   = { name = "lakehouse-deployer", namespace = local.namespace, labels = local.labels }
      roleRef    = { apiGroup = "rbac.authorization.k8s.io", kind = "Role", name = "lakehouse-deployer" }
      subjects   = [{ kind = "ServiceAccount", name = "lakehouse-deployer", namespace = local.namespace }]
    }
  }
  kubeconfig = var.cluster == null ? null : yamldecode(file(var.cluster.kubeconfig))
  # The context's cluster entry: the API server and its CA, as the kubeconfig names them.
  context_name = var.cluster == null ? null : coalesce(var.cluster.context, local.kubeconfig["current-context"])
  cluster_entry = var.cluster == null ? null : one([
    for c in local.kubeconfig.clusters : c.cluster
    if c.name == one([for x in local.kubeconfig.contexts : x.context.cluster if x.name == local.context_name])
  ])
}
