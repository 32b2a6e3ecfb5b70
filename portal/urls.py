from django.urls import path

from portal.views import auth, dashboard, operations

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("accounts/login/", auth.sign_in, name="login"),
    path("accounts/logout/", auth.sign_out, name="logout"),
    path("projects/switch/", dashboard.switch_project, name="switch_project"),
    path("operations/", operations.operation_list, name="operations"),
    path("operations/panel/", operations.panel, name="operations_panel"),
    path("operations/system-check/", operations.start_system_check, name="system_check"),
    path("operations/<int:pk>/", operations.operation_detail, name="operation"),
]
