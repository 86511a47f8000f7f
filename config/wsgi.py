import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# The web process: its queries get the web statement_timeout (config/settings.py).
os.environ.setdefault("VIGIL_PROCESS", "web")
application = get_wsgi_application()
