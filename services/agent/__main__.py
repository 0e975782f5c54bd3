from nimbus.services.agent.main import main

main()
