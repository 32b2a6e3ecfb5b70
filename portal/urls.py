from django.urls import path, register_converter
from django.urls.converters import PathConverter

from portal.views import auth, cloud, dashboard, operations, vms
from portal.views import batch as batch_views
from portal.views import catalogues as catalogue_views
from portal.views import certificates as certificate_views
from portal.views import storage as storage_views
from portal.views import workflows as workflow_views


class StoragePathConverter(PathConverter):
    """A path in a user's storage: Django's `path`, line feeds included. A name made outside the
    portal may hold one, and `path` (`.+`) would neither match it nor build its URL."""

    regex = "(?s:.+)"


register_converter(StoragePathConverter, "storagepath")

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("accounts/login/", auth.sign_in, name="login"),
    path("accounts/logout/", auth.sign_out, name="logout"),
    path("projects/switch/", dashboard.switch_project, name="switch_project"),
    path("operations/", operations.operation_list, name="operations"),
    path("operations/panel/", operations.panel, name="operations_panel"),
    path("operations/system-check/", operations.start_system_check, name="system_check"),
    path("operations/<int:pk>/", operations.operation_detail, name="operation"),
    path("vms/", vms.vm_list, name="vms"),
    path("vms/launch/", vms.vm_launch, name="vm_launch"),
    path("vms/launch/warnings/", vms.vm_launch_warnings, name="vm_launch_warnings"),
    path("vms/delete/", vms.vm_delete, name="vm_delete"),
    path("vms/<int:pk>/", vms.vm_detail, name="vm_detail"),
    path("vms/<int:pk>/snapshot/", vms.vm_snapshot, name="vm_snapshot"),
    path("vms/<int:pk>/associate/", vms.vm_associate, name="vm_associate"),
    path("vms/<int:pk>/extend/", vms.vm_extend, name="vm_extend"),
    path("vms/<int:pk>/console/", vms.vm_console, name="vm_console"),
    path("vms/<int:pk>/<str:action>/", vms.vm_action, name="vm_action"),
    path("vms/overview/", cloud.overview, name="cloud_overview"),
    path("vms/images/", cloud.image_list, name="images"),
    path("vms/images/<int:pk>/delete/", cloud.image_delete, name="image_delete"),
    path("vms/images/<int:pk>/share/", vms.image_share, name="image_share"),
    path("vms/shares/<int:pk>/<str:action>/", vms.image_share_action, name="image_share_action"),
    path("vms/keypairs/", cloud.keypair_list, name="keypairs"),
    path("vms/keypairs/<int:pk>/delete/", cloud.keypair_delete, name="keypair_delete"),
    path("vms/ips/", cloud.ip_list, name="ips"),
    path("vms/ips/allocate/", cloud.ip_allocate, name="ip_allocate"),
    path("vms/ips/<int:pk>/<str:action>/", cloud.ip_action, name="ip_action"),
    path("batch/", batch_views.batch_queue, name="batch"),
    path("batch/new/", batch_views.batch_new, name="batch_new"),
    path("batch/preview/", batch_views.batch_preview, name="batch_preview"),
    path("batch/upload/", batch_views.batch_upload, name="batch_upload"),
    path("batch/<int:pk>/", batch_views.batch_submission, name="batch_submission"),
    path("batch/<int:pk>/rest/", batch_views.batch_run_rest, name="batch_run_rest"),
    path("batch/<int:pk>/resubmit/", batch_views.batch_resubmit, name="batch_resubmit"),
    path("batch/<int:pk>/resubmit/edit/", batch_views.batch_resubmit_edit, name="batch_resubmit_edit"),
    path("batch/<int:pk>/<str:action>/", batch_views.batch_control, name="batch_control"),
    path("workflows/new/", workflow_views.workflow_new, name="workflow_new"),
    path("workflows/upload/", workflow_views.workflow_upload, name="workflow_upload"),
    path("workflows/<int:pk>/", workflow_views.workflow_detail, name="workflow"),
    path("workflows/<int:pk>/rescue/", workflow_views.workflow_rescue, name="workflow_rescue"),
    path("workflows/<int:pk>/nodes/<int:index>/", workflow_views.workflow_node, name="workflow_node"),
    path("workflows/<int:pk>/<str:action>/", workflow_views.workflow_control, name="workflow_control"),
    path("batch/jobs/<int:pk>/", batch_views.batch_job, name="batch_job"),
    path("batch/jobs/<int:pk>/<str:kind>/", batch_views.batch_job_file, name="batch_job_file"),
]

# Storage (issue 7): paths inside the user's own space; the storage adapter validates them.
urlpatterns += [
    path("storage/", storage_views.browse, name="storage"),
    path("storage/browse/<storagepath:path>", storage_views.browse, name="storage_browse"),
    path("storage/file/<storagepath:path>", storage_views.file_detail, name="storage_file"),
    path("storage/thumbnail/<storagepath:path>", storage_views.thumbnail, name="storage_thumbnail"),
    path("storage/download/<storagepath:path>", storage_views.download, name="storage_download"),
    path("storage/upload/", storage_views.upload, name="storage_upload"),
    path("storage/mkdir/", storage_views.mkdir, name="storage_mkdir"),
    path("storage/move/", storage_views.move, name="storage_move"),
    path("storage/delete/", storage_views.delete, name="storage_delete"),
    path("certificate/renew/", certificate_views.renew_certificate, name="certificate_renew"),
]

# Catalogues (issue 6): files are addressed by catalogue id, CCD (HDU) and format, never by a path;
# catalogue_preview opens a file of the user's own storage (the storage adapter confines the path).
urlpatterns += [
    path("catalogues/", catalogue_views.catalogue_list, name="catalogues"),
    path("catalogues/new/", catalogue_views.catalogue_new, name="catalogue_new"),
    path("catalogues/many/", catalogue_views.catalogue_many, name="catalogue_many"),
    path("catalogues/<int:pk>/", catalogue_views.catalogue_detail, name="catalogue_detail"),
    path("catalogues/<int:pk>/delete/", catalogue_views.catalogue_delete, name="catalogue_delete"),
    path("catalogues/<int:pk>/mosaic.png", catalogue_views.catalogue_mosaic, name="catalogue_mosaic"),
    path("catalogues/<int:pk>/rows/", catalogue_views.catalogue_rows, name="catalogue_rows"),
    path(
        "catalogues/<int:pk>/ccd/<int:hdu>.png",
        catalogue_views.catalogue_ccd_image,
        name="catalogue_ccd_image",
    ),
    path(
        "catalogues/<int:pk>/ccd/<int:hdu>/sources.json",
        catalogue_views.catalogue_ccd_sources,
        name="catalogue_ccd_sources",
    ),
    path(
        "catalogues/<int:pk>/download/<str:fmt>/",
        catalogue_views.catalogue_download,
        name="catalogue_download",
    ),
    path(
        "catalogues/storage/<storagepath:path>", catalogue_views.catalogue_preview, name="catalogue_preview"
    ),
]
