variable "site" {
  description = "The lakehouse site these hosts make up: the middle label of every host name, and lakehouse_site."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.site))
    error_message = "site must be a DNS label: lowercase letters, digits and hyphens, 2 to 32 characters."
  }
}

variable "domain" {
  description = "The DNS domain under the site: hosts are <name>.<site>.<domain>."
  type        = string
  default     = "lakehouse.test"
}

variable "metal_hosts" {
  description = "The systemd hosts to create, by short name, each with the service groups it runs."
  type        = map(list(string))
  default     = {}

  validation {
    condition     = alltrue([for name, _ in var.metal_hosts : can(regex("^[a-z][a-z0-9-]{0,62}$", name))])
    error_message = "Every key of metal_hosts must be a DNS label (the host's first label)."
  }
  validation {
    condition     = alltrue([for groups in values(var.metal_hosts) : length(setsubtract(groups, local.service_groups)) == 0])
    error_message = "metal_hosts names a group that is not a service group (object_storage, catalog_db, iceberg_catalog, query_coordinator, query_workers, orchestrator, observability)."
  }
}

variable "cluster" {
  description = "An existing Kubernetes cluster to prepare (a namespace and the deployer's RBAC), or null."
  type = object({
    name       = string
    kubeconfig = string
    context    = optional(string)
    namespace  = optional(string, "lakehouse")
    groups     = list(string)
  })
  default = null

  validation {
    condition     = var.cluster == null || length(setsubtract(try(var.cluster.groups, []), local.service_groups)) == 0
    error_message = "cluster.groups names a group that is not a service group."
  }
}

variable "state" {
  description = "Where this configuration's state lives, as given to the backend: echoed in the contract."
  type = object({
    backend  = string
    bucket   = string
    key      = string
    endpoint = string
  })
}

variable "ansible_playbook" {
  description = "The ansible-playbook that creates and removes the hosts (playbooks/sandbox.yml)."
  type        = string
  default     = "ansible-playbook"
}
