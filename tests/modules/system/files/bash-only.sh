echo "shell: ${BASH_VERSION:+bash}"
