# OpenStack: one instance per metal host, each published in Designate under its inventory name
# (the inventory and every rendered file name hosts, never addresses), and one security group:
# SSH and the service ports from the controller, everything between the site's own hosts.
# Credentials come from the usual OS_* environment variables or clouds.yaml, never from here.

locals {
  domain = trimsuffix(var.dns_zone, ".")
  hosts  = { for name, host in var.metal_hosts : "${name}.${var.site}.${local.domain}" => host }
  # The ports the controller uses: SSH, then every service's published port (the roles' defaults).
  controller_ports = [22, 9000, 5432, 19120, 19121, 8443, 8080, 9090, 9100]
}

data "openstack_dns_zone_v2" "site" {
  name = var.dns_zone
}

resource "openstack_networking_secgroup_v2" "site" {
  name        = "lakehouse-${var.site}"
  description = "lakehouse site ${var.site}"
}

resource "openstack_networking_secgroup_rule_v2" "controller" {
  for_each          = toset([for port in local.controller_ports : tostring(port)])
  security_group_id = openstack_networking_secgroup_v2.site.id
  direction         = "ingress"
  ethertype         = "IPv4"
  protocol          = "tcp"
  port_range_min    = tonumber(each.value)
  port_range_max    = tonumber(each.value)
  remote_ip_prefix  = var.controller_cidr
}

resource "openstack_networking_secgroup_rule_v2" "site" {
  security_group_id = openstack_networking_secgroup_v2.site.id
  direction         = "ingress"
  ethertype         = "IPv4"
  remote_group_id   = openstack_networking_secgroup_v2.site.id
}

resource "openstack_compute_instance_v2" "host" {
  for_each        = local.hosts
  name            = each.key
  image_name      = var.image
  flavor_name     = each.value.flavor
  key_pair        = var.key_pair
  security_groups = [openstack_networking_secgroup_v2.site.name]
  metadata        = { "lakehouse.site" = var.site, "lakehouse.groups" = join(",", each.value.groups) }

  network {
    name = var.network
  }
}

resource "openstack_dns_recordset_v2" "host" {
  for_each = local.hosts
  zone_id  = data.openstack_dns_zone_v2.site.id
  name     = "${each.key}."
  type     = "A"
  ttl      = 300
  records  = [openstack_compute_instance_v2.host[each.key].access_ip_v4]
}
